/*
 * text.c — output text: a growing buffer, escaping for tab-separated lines, JSON strings of
 * arbitrary bytes; see text.h.
 */
#include "proxima/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/error.h"

void px_text_put(px_text *t, const char *s, size_t n) {
  if (t->n + n + 1 > t->cap) {
    t->cap = (t->n + n + 1) * 2;
    t->p = px_realloc(t->p, t->cap);
  }
  memcpy(t->p + t->n, s, n);
  t->n += n;
  t->p[t->n] = '\0';
}

void px_text_str(px_text *t, const char *s) { px_text_put(t, s, strlen(s)); }

/* The bytes for the tab-separated output: backslash, newline, tab and CR escaped. */
void px_text_escaped(px_text *t, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *e = s[i] == '\\'   ? "\\\\"
                    : s[i] == '\n' ? "\\n"
                    : s[i] == '\t' ? "\\t"
                    : s[i] == '\r' ? "\\r"
                                   : NULL;
    if (e)
      px_text_str(t, e);
    else
      px_text_put(t, s + i, 1);
  }
}

/* The length of the valid UTF-8 sequence at s (of n bytes left), or 0 when it is not one. */
static size_t px_utf8_len(const unsigned char *s, size_t n) {
  size_t len = s[0] < 0x80             ? 1
               : (s[0] & 0xE0) == 0xC0 ? 2
               : (s[0] & 0xF0) == 0xE0 ? 3
               : (s[0] & 0xF8) == 0xF0 ? 4
                                       : 0;
  if (len == 0 || len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  unsigned cp = len == 1 ? s[0] : s[0] & (0x7F >> len);
  for (size_t i = 1; i < len; i++) cp = cp << 6 | (s[i] & 0x3F);
  static const unsigned least[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < least[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

/* A JSON string of the bytes: valid UTF-8 as it is, control characters escaped, and each byte
 * that is not part of valid UTF-8 (a model may produce any byte) as U+FFFD. */
void px_text_printable(px_text *t, const char *s, size_t n) {
  px_text_put(t, "", 0);
  for (size_t i = 0; i < n;) {
    const unsigned char c = (unsigned char)s[i];
    size_t len = px_utf8_len((const unsigned char *)s + i, n - i);
    if (len == 0 || c < 0x20 || c == 0x7F) {
      px_text_str(t, "\xEF\xBF\xBD"); /* U+FFFD */
      i++;
      continue;
    }
    px_text_put(t, s + i, len);
    i += len;
  }
}

void px_text_json(px_text *t, const char *s, size_t n) {
  px_text_str(t, "\"");
  for (size_t i = 0; i < n;) {
    const unsigned char c = (unsigned char)s[i];
    size_t len = px_utf8_len((const unsigned char *)s + i, n - i);
    char buf[8];
    if (len == 0) {
      px_text_str(t, "\\ufffd");
      i++;
      continue;
    }
    if (c == '"' || c == '\\') {
      snprintf(buf, sizeof buf, "\\%c", c);
      px_text_str(t, buf);
    } else if (c == '\n' || c == '\t' || c == '\r') {
      snprintf(buf, sizeof buf, "\\%c", c == '\n' ? 'n' : c == '\t' ? 't' : 'r');
      px_text_str(t, buf);
    } else if (c < 0x20 || c == 0x7F) {
      snprintf(buf, sizeof buf, "\\u%04x", c);
      px_text_str(t, buf);
    } else {
      px_text_put(t, s + i, len);
    }
    i += len;
  }
  px_text_str(t, "\"");
}

void px_text_free(px_text *t) {
  free(t->p);
  *t = (px_text){0};
}

px_status px_text_write_stdout(const char *p, size_t n, px_error *err) {
  errno = 0;
  if (fwrite(p, 1, n, stdout) == n && fflush(stdout) == 0) return PX_OK;
  return px_error_set(err, PX_ERUN, "cannot write the output to stdout: %s",
                      errno ? strerror(errno) : "short write");
}
