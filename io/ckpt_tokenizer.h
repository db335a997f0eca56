/*
 * ckpt_tokenizer.h — io/'s private half of a checkpoint's /tokenizer group (checkpoint.h says
 * what it holds): written with the checkpoint's chunk writer, read from an open checkpoint.
 * Only io/ includes this header.
 */
#ifndef PROXIMA_IO_CKPT_TOKENIZER_H
#define PROXIMA_IO_CKPT_TOKENIZER_H

#include <hdf5.h>

#include "h5chunk.h"
#include "proxima/error.h"
#include "proxima/tokenizer.h"

/* Writes /tokenizer of t into file (gcpl for the group). <0 on failure. Not collective. */
herr_t px_ckpt_write_tokenizer(hid_t file, hid_t gcpl, const px_tokenizer *t,
                               px_h5_chunk_writer *w);

/* Reads /tokenizer of the open checkpoint file (path names it in messages) into t: the byte
 * tokenizer when the group is absent (checkpoints written before tokenizers were stored). The
 * stored files are rebuilt into a tokenizer and must give the stored hash and ids. PX_EINPUT
 * naming what is wrong. Not collective. */
px_status px_ckpt_read_tokenizer_in(hid_t file, const char *path, px_tokenizer *t, px_error *err);

#endif
