/*
 * bench_mem.c — the memory a `proxima ppo` rank needs, estimated from its configuration before
 * anything runs (issue 9), in parts a user can size a run with. benchmarks/run compares it with
 * the peak resident set (VmHWM) of real 1- and 2-rank PPO runs of the same configuration.
 *
 * Per rank, from what src/train/ppo.c builds (every rank holds all four models and every
 * rollout of the iteration; the models and the KV cache are built for ppo.micro_batch and
 * sample.batch sequences of T positions, T = px_ppo_positions: the longest prompt and
 * sample.max_new_tokens, at most model.max_seq_len; without --longest-prompt, max_seq_len):
 *   parameters   4 models (policy, value, frozen reference, reward) x N floats
 *   gradients    2 trainable models (policy, value) x N floats
 *   Adam moments 2 trainable models x 2 x N floats
 *   activations  each model's activation arena (and, trainable, the backward's scratch):
 *                px_gpt_bytes less its parameter, gradient and moment buffers
 *   KV cache     the generator's, px_generator_bytes: keys and values [L, sample.batch, T, C],
 *                logits and sampler rows, the step's scratch rows
 *   rollouts     the iteration's buffers: tokens [B, T], 7 floats and a mask byte per response
 *                token [B, R], the micro-batch's in/out rows, the minibatch's temporaries
 * The reward model's configuration is the policy's here (the reward model is trained from the
 * SFT checkpoint, as scripts/demo.sh does); the value model is the reward model's (ppo.value_init
 * = reward, the default) or the policy's, the same shapes either way. Not counted: the shared
 * libraries, MPI's and BLIS's own buffers, the data sets (prompts), HDF5's caches — the fixed
 * runtime, which benchmarks/run measures separately (an idle `proxima config`).
 *
 * Usage: bench_mem [-c INI] [--longest-prompt TOKENS] [section.key=value ...]
 * Output: the parts in MB (1e6 bytes), and "result mem_estimate_<part>_mb X" lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/config.h"
#include "proxima/error.h"
#include "proxima/fsutil.h"
#include "proxima/generate.h"
#include "proxima/gpt.h"
#include "proxima/ppo.h"
#include "proxima/tokenizer.h"

static void die(const px_error *err) {
  fprintf(stderr, "bench_mem: %s\n", err->msg);
  exit(1);
}

int main(int argc, char **argv) {
  px_config cfg;
  px_config_init(&cfg);
  px_error err;
  long long longest = -1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--longest-prompt") && i + 1 < argc) {
      char *end;
      longest = strtoll(argv[++i], &end, 10);
      if (*end || longest < 0) {
        fprintf(stderr, "bench_mem: --longest-prompt takes a token count, not '%s'\n", argv[i]);
        return 1;
      }
    } else if (!strcmp(argv[i], "-c") && i + 1 < argc) {
      char *text;
      size_t len;
      const char *path = argv[++i];
      if (px_fs_read_file(path, 1 << 20, &text, &len, &err) != PX_OK) die(&err);
      if (px_config_parse_ini(&cfg, text, path, &err) != PX_OK) die(&err);
      free(text);
    } else if (strchr(argv[i], '=')) {
      if (px_config_override(&cfg, argv[i], &err) != PX_OK) die(&err);
    } else {
      fprintf(stderr,
              "usage: bench_mem [-c INI] [--longest-prompt TOKENS] [section.key=value ...]\n");
      return 1;
    }
  }
  if (cfg.model_vocab_size == 0) { /* fit the tokenizer, as sft does */
    px_tokenizer tok;
    if (px_tokenizer_load(&tok, cfg.model_tokenizer, cfg.model_tokenizer_dir, &err) != PX_OK)
      die(&err);
    cfg.model_vocab_size = px_tokenizer_vocab_size(&tok);
    px_tokenizer_free(&tok);
  }
  const px_gpt_config pc = {(int)cfg.model_vocab_size, (int)cfg.model_max_seq_len,
                            (int)cfg.model_n_layer,    (int)cfg.model_n_head,
                            (int)cfg.model_n_embd,     PX_GPT_HEAD_LM};
  px_gpt_config vc = pc;
  vc.head = PX_GPT_HEAD_SCALAR;
  if (px_gpt_config_check(&pc, &err) != PX_OK) die(&err);
  const int mb = (int)cfg.ppo_micro_batch;
  const int T = longest < 0 ? pc.max_seq_len
                            : px_ppo_positions(pc.max_seq_len, longest, cfg.sample_max_new_tokens);
  const double f = sizeof(float);
  const double Np = (double)px_gpt_param_count(&pc), Nv = (double)px_gpt_param_count(&vc);

  /* Parameters of all four; gradients and two moments of the trainable two. */
  const double params = f * (2 * Np + 2 * Nv), grads = f * (Np + Nv), moments = 2 * grads;
  /* The arenas: px_gpt_bytes less the buffers counted above. */
  const double act =
      (px_gpt_bytes(&pc, mb, T, 1) - 4 * f * Np) + (px_gpt_bytes(&vc, mb, T, 1) - 4 * f * Nv) +
      (px_gpt_bytes(&pc, mb, T, 0) - f * Np) + (px_gpt_bytes(&vc, mb, T, 0) - f * Nv);
  const double S = (double)cfg.sample_batch, kv = px_generator_bytes(&pc, (int)cfg.sample_batch, T);
  const double B = (double)cfg.ppo_batch_size * (double)cfg.ppo_group_size; /* responses */
  const double R = cfg.sample_max_new_tokens < T ? (double)cfg.sample_max_new_tokens : T - 2;
  const double M = (double)cfg.ppo_minibatch;
  const double roll = 4.0 * B * T + (7 * f + 1) * B * R + 4 * f * mb * T + (8 * f + 1) * M * R;
  const double total = params + grads + moments + act + kv + roll;

  printf("bench_mem: ppo per rank, model L=%d NH=%d C=%d V=%d T=%d (%.3fM parameters; value "
         "and reward models %.3fM), micro_batch %d, sample.batch %.0f, ppo.batch_size %.0f\n",
         pc.n_layer, pc.n_head, pc.n_embd, pc.vocab_size, T, Np * 1e-6, Nv * 1e-6, mb, S, B);
  const char *names[] = {"parameters", "gradients", "adam_moments", "activations",
                         "kv_cache",   "rollouts",  "total"};
  const double parts[] = {params, grads, moments, act, kv, roll, total};
  for (int i = 0; i < 7; i++) {
    printf("  %-13s %10.2f MB\n", names[i], parts[i] * 1e-6);
    printf("result mem_estimate_%s_mb %.3f\n", names[i], parts[i] * 1e-6);
  }
  px_config_free(&cfg);
  return 0;
}
