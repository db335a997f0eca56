/*
 * jsonutil.h — io/'s private JSON helper: what kind of value a JSON node is, in the words of a
 * message ("field \"x\" is an integer, expected a string"). Only io/ includes this header.
 */
#ifndef PROXIMA_IO_JSONUTIL_H
#define PROXIMA_IO_JSONUTIL_H

#include <jansson.h>

/* "an object", "an array", "a string", "an integer", "a number", "a boolean" or "null". */
const char *px_json_kind(const json_t *v);

#endif
