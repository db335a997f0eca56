/*
 * text.h — building output text: a growing byte buffer, the escaping of tab-separated output
 * lines, and JSON strings of arbitrary bytes (a model may produce any byte). Not collective.
 */
#ifndef PROXIMA_TEXT_H
#define PROXIMA_TEXT_H

#include <stddef.h>

#include "proxima/error.h"

/* A growing, NUL-terminated byte buffer; start from {0}. */
typedef struct px_text {
  char *p;
  size_t n, cap;
} px_text;

void px_text_put(px_text *t, const char *s, size_t n);
void px_text_str(px_text *t, const char *s);
void px_text_free(px_text *t);

/* Writes n bytes of p to stdout and flushes it: PX_ERUN with the reason when that fails (a
 * closed pipe, a full disk behind a redirect), so that no output is lost silently. Not
 * collective. */
px_status px_text_write_stdout(const char *p, size_t n, px_error *err);

/* The bytes with backslash, newline, tab and CR written \\ \n \t \r. */
void px_text_escaped(px_text *t, const char *s, size_t n);

/* The bytes as printable UTF-8: valid UTF-8 as it is, each control character and each byte
 * that is not part of valid UTF-8 as U+FFFD. For text shown to a person (and json_string). */
void px_text_printable(px_text *t, const char *s, size_t n);

/* A quoted JSON string of the bytes: valid UTF-8 as it is, control characters escaped, and
 * each byte that is not part of valid UTF-8 as U+FFFD. */
void px_text_json(px_text *t, const char *s, size_t n);

#endif
