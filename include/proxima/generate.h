/*
 * generate.h — batched generation with the KV cache (DESIGN.md section 3), for rollouts and for
 * `proxima generate`.
 *
 * A generator advances up to `batch` sequences together: it prefills their prompts into the
 * cache, then steps all the unfinished ones at once, one token each, so every layer of a step is
 * one product with M = the active sequences (px_matmul_decode_forward). A sequence stops at EOS
 * (kept as its last response token), after max_new_tokens tokens, or when it fills the model's
 * max_seq_len positions (prompt and response together, so that any model of that size can score it
 * whole).
 *
 * Determinism: the token drawn at position t of sample i uses the coin of (seed, iteration, i,
 * t), i the GLOBAL sample index (first_index + the prompt's place in the call), so a sample is
 * the same whichever rank, batch or slot generates it, bit for bit: the decode product computes
 * a row's logits the same whatever rows share the call.
 *
 * Log-probs: each response token's log softmax(logits / T)[token] over the whole vocabulary,
 * T the sampling temperature (1 for greedy; see px_sampler_logprob_temperature), computed by
 * px_crossentropy_forward as px_gpt_logprobs does: a teacher-forced px_gpt_forward and
 * px_gpt_logprobs over the same tokens give the same numbers up to the products' rounding.
 */
#ifndef PROXIMA_GENERATE_H
#define PROXIMA_GENERATE_H

#include <stdint.h>

#include "proxima/config.h"
#include "proxima/dataset.h"
#include "proxima/error.h"
#include "proxima/gpt.h"
#include "proxima/sampler.h"
#include "proxima/tokenizer.h"

/* Responses to n prompts; row i belongs to the call's prompt i. */
typedef struct px_generation {
  int64_t n;        /* responses */
  int max_new;      /* R: the row stride of tokens and logprobs */
  int32_t *tokens;  /* [n, R]: the response tokens, PAD past lengths[i] */
  float *logprobs;  /* [n, R]: their log-probs at the sampling temperature, 0 past lengths[i] */
  int32_t *lengths; /* [n]: response tokens, EOS included */
  uint8_t *eos;     /* [n]: 1 when the response ended with EOS */
} px_generation;

void px_generation_free(px_generation *g);

/* Prompts as the model reads them, one after another: BOS, then the prompt's tokens. */
typedef struct px_prompts {
  int32_t *tokens;  /* prompt i is tokens[offsets[i] .. offsets[i + 1]) */
  int64_t *offsets; /* [n + 1] */
  int64_t n;
  int64_t cut; /* how many were longer than px_prompt_max_tokens and lost their end */
} px_prompts;

/* The one truncation rule of every command: a model of max_seq_len T reads at most the first
 * T - 3 tokens of a prompt, so that BOS, the prompt, a response token and EOS fit. */
static inline int64_t px_prompt_max_tokens(int T) { return T > 3 ? T - 3 : 0; }

/* Packs the prompts (field 0) of records[0..n) of d (records NULL: first, first + 1, ...), each
 * after tok's BOS, for a
 * model of max_seq_len T, each cut to px_prompt_max_tokens(T); T = 0: whole, for a command that
 * refuses a prompt too long (px_generate names it). Not collective. */
void px_prompts_pack(px_prompts *p, const px_dataset *d, const px_tokenizer *tok,
                     const int64_t *records, int64_t first, int64_t n, int T);
void px_prompts_free(px_prompts *p);

/* Warns once (on rank 0) how many prompts over all ranks px_prompts_pack cut; who names the
 * command. Collective. */
void px_prompts_warn_cut(const px_prompts *p, const char *who, int T);

/* Rows a prefill call may take at once (at least the batch): bounds the KV cache's scratch. */
enum { PX_PREFILL_ROWS = 1024 };

typedef struct px_generator {
  const px_gpt *model; /* not owned; LM head */
  px_sampler sampler;
  px_gpt_kv kv;
  int batch, max_new;
  float *rows;           /* [batch, V]: logits after the prompts, in slot order */
  float *probs, *losses; /* [batch, V], [batch]: px_crossentropy_forward's outputs */
  int32_t *next, *n_new; /* [batch]: sampled tokens; tokens fed per entry */
  int32_t *feed;         /* [max_rows]: tokens fed in one extend */
  int *active, *entry;   /* [batch]: slots of the unfinished sequences; of an extend's entries */
  uint8_t *final;        /* [batch]: an extend entry that ends its prompt */
  double *coins;         /* [batch] */
  int64_t tokens_out;    /* response tokens generated since px_generator_build */
  double seconds;        /* spent in px_generate since then */
} px_generator;

/* A generator of up to batch sequences at once and max_new_tokens tokens per response, for a
 * model with the LM head and its tokenizer tok (which must outlive the generator); the sampler
 * configuration must pass px_sampler_config_check. The KV cache holds batch x positions positions
 * of every layer (1 <= positions <= max_seq_len; 0: max_seq_len), and a sequence stops when it
 * fills them: a caller that knows its longest prompt gives prompt + response (px_ppo_positions). */
void px_generator_build(px_generator *g, const px_gpt *model, const px_tokenizer *tok,
                        const px_sampler_config *sampling, uint64_t seed, int batch,
                        int max_new_tokens, int positions);
void px_generator_free(px_generator *g);

/* The bytes px_generator_build allocates for a model of this configuration, batch and positions
 * (0: max_seq_len), its KV cache and sampler included: what generation needs beyond the model,
 * for sizing a run. */
double px_generator_bytes(const px_gpt_config *config, int batch, int positions);

/* Generates a response to each of n prompts: prompt i is tokens[offsets[i] .. offsets[i+1]),
 * the model's input as it is (BOS first, as batch.h builds sequences), and its global sample
 * index is first_index + i. Fills out (allocated here; free with px_generation_free). A prompt
 * that is empty, holds a token outside the vocabulary or leaves no room for a response in
 * max_seq_len is PX_EINPUT naming its global index (out is then left empty). Not collective. */
px_status px_generate(px_generator *g, const int32_t *tokens, const int64_t *offsets, int64_t n,
                      uint64_t iteration, int64_t first_index, px_generation *out, px_error *err);

/* The [sample] keys of a configuration as a sampler configuration. Not collective. */
px_sampler_config px_sample_config(const px_config *cfg);

#endif
