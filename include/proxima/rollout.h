/*
 * rollout.h — the rollout buffer file of one PPO iteration (DESIGN.md section 6), written by
 * one process from every rank's rows (each rank holds contiguous rows of the batch) and read
 * back for tests and for independent checks (tests/rollout_check.py recomputes the shaped rewards,
 * advantages and returns from it).
 *
 * Layout of `rollouts-NNNNNNNN.h5`, N rows (responses), P prompt positions, R response positions:
 *   tokens        int32   [N, P+R]  columns 0..P-1: the prompt (BOS first) then PAD up to P;
 *                                   columns P..P+R-1: the response (EOS last when it has one)
 *                                   then PAD up to R. Row i's response token t is at P+t.
 *   prompt_len    int32   [N]       prompt tokens, BOS included (0..P)
 *   response_len  int32   [N]       response tokens, EOS included (0..R)
 *   logprobs      float32 [N, R]    log pi_theta of the sampled response tokens
 *   ref_logprobs  float32 [N, R]    log pi_base of the same tokens
 *   values        float32 [N, R]    V_psi per response position
 *   rewards       float32 [N, R]    shaped: -beta kl_t, plus score at the last real token
 *   advantages    float32 [N, R]    GAE, then whitened with whiten_mean / whiten_std
 *   returns       float32 [N, R]    raw (unwhitened) advantages + values
 *   mask          uint8   [N, R]    1 at t < response_len, 0 after
 *   score         float32 [N]       what entered the reward at the last real token: the
 *                                   normalised RM score, or no_eos_penalty for a response that
 *                                   reached R without EOS (a response has EOS when its last real
 *                                   token, tokens[i, P + response_len - 1], is eos_id)
 * Positions where mask is 0 carry 0 in rewards, advantages and returns; logprobs, ref_logprobs
 * and values there are whatever the writer passed and mean nothing.
 * Root attributes: format "proxima-rollouts", format_version 1, n_rows, prompt_positions,
 * response_positions, iteration, beta, gamma, lambda, kl_estimator ("k1" or "k3"), kl_clamp
 * (inf for none), no_eos_penalty, whiten_mean, whiten_std, whiten_eps, whiten_shift_mean (0/1),
 * pad_id, bos_id, eos_id, estimator (gae, grpo, rloo or reinforce_pp), group_size, grpo_scale_std
 * (0/1), group_eps, kl_in ("reward" or "loss"); a file without the last five (written before
 * there was a choice) is gae, 1, 1, 1e-6, reward. With them (rl.h has the formulas) everything
 * but the inputs can be recomputed: kl_t = clamp(k(lp - ref)); rewards as above, with beta 0
 * when kl_in is loss; for gae, GAE(gamma, lambda) on the rewards and values, advantages =
 * (A - shift_mean * whiten_mean) / whiten_std, returns = A + values, where whiten_mean and
 * whiten_std = sqrt(var + whiten_eps) are the masked (population) statistics of the raw
 * advantages A over all N rows. Critic-free runs have values 0 and returns G_t = r_t +
 * gamma G_{t+1}; reinforce_pp whitens the returns as gae its A; grpo and rloo give each row one
 * advantage from its sequence reward (its rewards' sum) against its group, rows
 * i / group_size alike (rl.h), and record whiten_mean 0, whiten_std 1.
 * Datasets are chunked with the Fletcher-32 checksum filter; the file does not depend on the
 * number of ranks that wrote it (the same rows give the same datasets).
 */
#ifndef PROXIMA_ROLLOUT_H
#define PROXIMA_ROLLOUT_H

#include <stdint.h>

#include "proxima/error.h"
#include "proxima/fsutil.h"

/* Rows [first, first + n) of a rollout batch of n_global rows; arrays as in the layout above,
 * row-major, n rows each. px_rollout_write reads them (and keeps no pointer); px_rollout_read
 * allocates and fills them (free with px_rollout_free). */
typedef struct px_rollout {
  int64_t n;             /* rows here */
  int64_t first;         /* global index of the first row here */
  int64_t n_global;      /* N */
  int64_t P, R;          /* prompt and response positions */
  int32_t *tokens;       /* [n, P+R] */
  int32_t *prompt_len;   /* [n] */
  int32_t *response_len; /* [n] */
  float *logprobs;       /* [n, R] */
  float *ref_logprobs;   /* [n, R] */
  float *values;         /* [n, R] */
  float *rewards;        /* [n, R] */
  float *advantages;     /* [n, R] */
  float *returns;        /* [n, R] */
  uint8_t *mask;         /* [n, R] */
  float *score;          /* [n] */
} px_rollout;

/* The settings that produced the rows: what an independent checker needs besides them. */
typedef struct px_rollout_attrs {
  int64_t iteration;
  double beta, gamma, lambda;
  int kl_kind;           /* KL estimator kN by its N: 1 or 3, as rl.h's px_rl_kl_kind */
  int whiten_shift_mean; /* 1: advantages = (A - mean) / std; 0: A / std */
  double kl_clamp;       /* INFINITY: no clamp */
  double no_eos_penalty; /* the score of a response without EOS */
  double whiten_mean;    /* global masked mean of the raw advantages */
  double whiten_std;     /* sqrt(global masked variance + whiten_eps) */
  double whiten_eps;
  int64_t pad_id, bos_id, eos_id; /* the tokenizer's specials, as tokens holds them */
  /* The advantage estimator (ppo.estimator), by its index in px_rollout_estimators: 0 gae. */
  int estimator;
  int64_t group_size; /* responses per prompt: rows g k .. g k + k - 1 answer one prompt */
  int grpo_scale_std; /* grpo divides by the group's std (+ group_eps) */
  double group_eps;
  int kl_in_loss; /* 1: the KL was a loss term, the rewards hold the score alone */
} px_rollout_attrs;

/* Attribute `estimator`'s values, by px_rollout_attrs.estimator: ppo.estimator's names, in the
 * order of ppo.c's px_ppo_estimator. */
enum { PX_ROLLOUT_N_ESTIMATORS = 4 };
extern const char *const px_rollout_estimators[PX_ROLLOUT_N_ESTIMATORS];

/* Writes the rollout file at path. who: PX_IO_EVERY_RANK (collective: every rank of the run
 * passes its rows, rank k's rows follow rank k-1's, together they cover [0, n_global) exactly
 * once, with the same n_global, P, R and attrs everywhere) or PX_IO_ALONE (this process writes
 * all rows; the other ranks, if any, do not take part).
 * The rows are gathered to rank 0, which builds the file in memory and, once every rank has
 * agreed that all went well, writes it under a temporary name beside path (DIR/.NAME.tmp.PID),
 * fsyncs it and renames it to path; every rank returns after that, with the same status. A
 * failure on any rank (a full disk, a file-size limit, EIO on rank 0; PROXIMA_FAULT's
 * rollout.write anywhere) stops every rank at the next agreement, never inside a collective
 * write, and leaves nothing behind. Rows or attrs that are inconsistent (shapes, lengths out of
 * range, a mask that is not the prefix of response_len, rows that overlap, leave gaps or are out
 * of rank order, ranks that disagree) give PX_EINPUT, an I/O failure PX_ERUN naming the file,
 * the rank and the reason; every rank returns the same status and the message of the lowest
 * failing rank. */
px_status px_rollout_write(const char *path, px_io_who who, const px_rollout *rows,
                           const px_rollout_attrs *attrs, px_error *err);

/* Reads the rollout file at path: part `part` of `parts` of its rows (px_comm_share), or all of
 * them with part 0 of 1, into out (and its attributes into attrs, which may be NULL). Each
 * process opens and reads the file alone; with PX_IO_EVERY_RANK the ranks then agree on the
 * outcome (collective), with PX_IO_ALONE nothing is collective. The format, version,
 * attributes, every dataset's type, shape and stored size (a file that declares more rows than
 * it stores is refused before anything is allocated), the lengths and the mask are checked; a
 * missing, damaged (checksum) or foreign file is PX_EINPUT with a message naming the file and
 * what is wrong. On failure out holds nothing. */
px_status px_rollout_read(const char *path, px_io_who who, int part, int parts, px_rollout *out,
                          px_rollout_attrs *attrs, px_error *err);

/* Frees what px_rollout_read allocated and zeroes *r. */
void px_rollout_free(px_rollout *r);

#endif
