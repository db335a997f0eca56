/*
 * synth.h — the built-in task, `proxima data synth`: the embedded default that needs no
 * download.
 *
 * Task "arith": prompts are two-digit additions "37+45=" (8100 of them) and the gold answer is
 * the sum. A base completion is right with probability synth.base_accuracy and otherwise off by
 * a nonzero offset of at most synth.max_offset, in its last digit (synth.errors = digit: the tens
 * stay right) or in the sum (offset): a base model with bad habits. A preference pair
 * is two base completions of one prompt, the one closer to the sum preferred (ties dropped), and
 * a fraction synth.flip_rate of labels flipped, standing in for noisy human raters. The
 * n_eval held-out prompts never appear in sft, prefs or prompts.
 *
 * Files written to synth.out: sft.jsonl, prefs.jsonl, prompts.jsonl, eval.jsonl, the .h5 data
 * sets imported from them (prompts and eval carry the gold answer as "reference"), and
 * synth-config.ini. Every draw is Philox keyed by run.seed: one seed, the same bytes.
 */
#ifndef PROXIMA_SYNTH_H
#define PROXIMA_SYNTH_H

#include "proxima/config.h"
#include "proxima/error.h"

/* Number of distinct prompts of the arith task. */
#define PX_SYNTH_ARITH_PROMPTS 8100

/* Writes the task's files. Not collective: call it on one rank. */
px_status px_synth_run(const px_config *cfg, px_error *err);

/* The gold answer of an arith prompt "A+B=" as text (into buf of n bytes), or -1 if the prompt
 * is not of that form. Exposed for tests and evaluation. */
int px_synth_arith_answer(const char *prompt, size_t len, char *buf, size_t n);

#endif
