/*
 * run.c — the run directory: config.ini, metrics.jsonl, the log file; see run.h.
 */
#include "proxima/run.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxima/checkpoint.h"
#include "proxima/comm.h"
#include "proxima/fsutil.h"
#include "proxima/jsonl.h"
#include "proxima/log.h"
#include "proxima/signals.h"

px_status px_run_open(px_run *run, const px_config *cfg, px_error *err) {
  memset(run, 0, sizeof *run);
  snprintf(run->dir, sizeof run->dir, "%s", cfg->run_dir);
  snprintf(run->ckpt_dir, sizeof run->ckpt_dir, "%s/checkpoints", run->dir);
  snprintf(run->rollout_dir, sizeof run->rollout_dir, "%s/rollouts", run->dir);
  run->config_text = px_config_to_text(cfg);
  px_status st = PX_OK;
  if (px_comm_rank() == 0) {
    char path[4300];
    /* Locked before anything in it is written: a process refused here changes nothing. */
    st = run->dir[0] ? px_fs_mkdirs(run->dir, err)
                     : px_error_set(err, PX_EINPUT,
                                    "run.dir is empty: name the run directory "
                                    "(--run DIR)");
    if (st == PX_OK) st = px_runlock_acquire(&run->lock, run->dir, err);
    if (st == PX_OK) st = px_fs_mkdirs(run->ckpt_dir, err);
    if (st == PX_OK) st = px_fs_mkdirs(run->rollout_dir, err);
    if (st == PX_OK) {
      snprintf(path, sizeof path, "%s/config.ini", run->dir);
      st = px_fs_write_atomic(path, NULL, run->config_text, strlen(run->config_text), err);
    }
    if (st == PX_OK) {
      snprintf(path, sizeof path, "%s/metrics.jsonl", run->dir);
      run->metrics = fopen(path, "a");
      if (!run->metrics) st = px_error_set(err, PX_ERUN, "cannot open %s for appending", path);
    }
    if (st == PX_OK) {
      snprintf(path, sizeof path, "%s/timings.jsonl", run->dir);
      run->timings = fopen(path, "a");
      if (!run->timings) st = px_error_set(err, PX_ERUN, "cannot open %s for appending", path);
    }
    if (st == PX_OK) {
      snprintf(path, sizeof path, "%s/proxima.log", run->dir);
      st = px_log_open_file(path, err);
    }
  }
  st = px_comm_agree(st, err);
  if (st != PX_OK) px_run_close(run);
  return st;
}

void px_run_close(px_run *run) {
  if (run->metrics && fclose(run->metrics) != 0)
    px_log_warn("cannot write %s/metrics.jsonl to the end", run->dir);
  if (run->timings && fclose(run->timings) != 0)
    px_log_warn("cannot write %s/timings.jsonl to the end", run->dir);
  run->metrics = run->timings = NULL;
  free(run->config_text);
  run->config_text = NULL;
  px_log_close_file();
  px_runlock_release(&run->lock); /* last: the directory is no longer written */
}

static void px_run_record(FILE *f, const char *file, const char *dir, const char *phase,
                          int64_t step, int n, const char *const *names, const double *values) {
  if (px_comm_rank() != 0 || !f) return;
  if (px_jsonl_write_record(f, phase, step, n, names, values) != 0)
    px_log_warn("cannot write to %s/%s", dir, file);
}

void px_run_metrics(px_run *run, const char *phase, int64_t step, int n, const char *const *names,
                    const double *values) {
  px_run_record(run->metrics, "metrics.jsonl", run->dir, phase, step, n, names, values);
}

void px_run_timings(px_run *run, const char *phase, int64_t step, int n, const char *const *names,
                    const double *values) {
  px_run_record(run->timings, "timings.jsonl", run->dir, phase, step, n, names, values);
}

int px_run_should_stop(void) {
  int64_t any = px_signals_pending() != 0;
  px_comm_allreduce_sum_i64(&any, 1);
  return any > 0;
}

px_status px_run_resume_from(const px_run *run, const px_config *cfg, char *path, size_t n,
                             px_error *err) {
  return px_ckpt_find_resume(run->ckpt_dir, cfg->run_resume, path, n, err);
}

int64_t px_run_metrics_bytes(px_run *run) {
  int64_t bytes = 0;
  if (px_comm_rank() == 0 && run->metrics) {
    long at = fflush(run->metrics) == 0 ? ftell(run->metrics) : -1;
    PX_REQUIRE(at >= 0, "cannot tell the size of %s/metrics.jsonl", run->dir);
    bytes = at;
  }
  px_comm_bcast(&bytes, sizeof bytes, 0);
  return bytes;
}

void px_run_metrics_rewind(px_run *run, const char *ckpt_path, int64_t bytes) {
  if (px_comm_rank() != 0 || !run->metrics) return;
  char dir[4300], a[PATH_MAX], b[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", ckpt_path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  if (!slash || !realpath(dir, a) || !realpath(run->ckpt_dir, b) || strcmp(a, b) != 0) return;
  long at = fflush(run->metrics) == 0 ? ftell(run->metrics) : -1;
  if (at > bytes && ftruncate(fileno(run->metrics), (off_t)bytes) != 0)
    px_log_warn("cannot cut %s/metrics.jsonl back to the checkpoint's %lld bytes", run->dir,
                (long long)bytes);
}

px_status px_run_checkpoint(px_run *run, const px_config *cfg, int64_t step, int64_t iteration,
                            const px_tokenizer *tokenizer, const px_ckpt_model *models,
                            int n_models, const px_ckpt_var *vars, int n_vars,
                            int64_t *metrics_bytes, px_error *err) {
  double t0 = px_log_elapsed();
  *metrics_bytes = px_run_metrics_bytes(run);
  px_ckpt ckpt = {step, iteration, run->config_text, models, n_models, vars, n_vars, tokenizer};
  PX_TRY(px_ckpt_write(run->ckpt_dir, &ckpt, (int)cfg->run_keep_last, err));
  px_log_info("checkpoint %s/ckpt-%08lld.h5 written in %.2fs", run->ckpt_dir, (long long)step,
              px_log_elapsed() - t0);
  return PX_OK;
}

px_status px_run_restore(px_run *run, const px_config *cfg, const char *path, px_ckpt_model *models,
                         int n_models, const px_ckpt_var *vars, int n_vars, const int64_t *seed,
                         const int64_t *metrics_bytes, px_error *err) {
  px_status st = px_ckpt_read_state(path, vars, n_vars, err);
  for (int i = 0; i < n_models && st == PX_OK; i++) st = px_ckpt_read_model(path, &models[i], err);
  if (st == PX_OK && *seed != cfg->run_seed)
    st = px_error_set(err, PX_EINPUT,
                      "%s was written with run.seed = %lld; resuming with run.seed = %lld would "
                      "not continue the same run",
                      path, (long long)*seed, (long long)cfg->run_seed);
  PX_TRY(px_comm_agree(st, err));
  px_run_metrics_rewind(run, path, *metrics_bytes);
  return PX_OK;
}
