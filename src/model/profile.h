/*
 * profile.h — the model's optional timers (px_gpt_profile in gpt.h), private to src/model/.
 * PX_GPT_TIMED(model, part, call) runs the call and, when model->profile is set, adds its wall
 * seconds to that part. Call it outside OpenMP parallel regions (the model's kernel calls are).
 */
#ifndef PROXIMA_MODEL_PROFILE_H
#define PROXIMA_MODEL_PROFILE_H

#include <time.h>

#include "proxima/gpt.h"

static inline double px_gpt_clock(const px_gpt *model) {
  if (!model->profile) return 0.0;
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static inline void px_gpt_clock_add(const px_gpt *model, px_gpt_part part, double start) {
  if (!model->profile) return;
  model->profile->seconds[part] += px_gpt_clock(model) - start;
  model->profile->calls[part]++;
}

#define PX_GPT_TIMED(model, part, call)                                                            \
  do {                                                                                             \
    const double px_start_ = px_gpt_clock(model);                                                  \
    call;                                                                                          \
    px_gpt_clock_add(model, part, px_start_);                                                      \
  } while (0)

#endif
