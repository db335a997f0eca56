/*
 * run.c — the run directory: config.ini, metrics.jsonl, the log file; see run.h.
 */
#include "proxima/run.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/comm.h"
#include "proxima/fsutil.h"
#include "proxima/log.h"

px_status px_run_open(px_run *run, const px_config *cfg, px_error *err) {
  memset(run, 0, sizeof *run);
  snprintf(run->dir, sizeof run->dir, "%s", cfg->run_dir);
  snprintf(run->ckpt_dir, sizeof run->ckpt_dir, "%s/checkpoints", run->dir);
  snprintf(run->rollout_dir, sizeof run->rollout_dir, "%s/rollouts", run->dir);
  run->config_text = px_config_to_text(cfg);
  px_status st = PX_OK;
  if (px_comm_rank() == 0) {
    char path[4300];
    st = px_fs_mkdirs(run->ckpt_dir, err);
    if (st == PX_OK) st = px_fs_mkdirs(run->rollout_dir, err);
    if (st == PX_OK) {
      snprintf(path, sizeof path, "%s/config.ini", run->dir);
      st = px_fs_write_atomic(path, run->config_text, strlen(run->config_text), err);
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
  if (run->metrics) fclose(run->metrics);
  if (run->timings) fclose(run->timings);
  run->metrics = run->timings = NULL;
  free(run->config_text);
  run->config_text = NULL;
  px_log_close_file();
}

static void px_run_record(FILE *f, const char *file, const char *dir, const char *phase,
                          int64_t step, int n, const char *const *names, const double *values) {
  if (px_comm_rank() != 0 || !f) return;
  json_t *obj = json_object();
  PX_REQUIRE(obj, "json_object failed (out of memory)");
  json_object_set_new(obj, "phase", json_string(phase));
  json_object_set_new(obj, "step", json_integer((json_int_t)step));
  for (int i = 0; i < n; i++)
    json_object_set_new(obj, names[i], isfinite(values[i]) ? json_real(values[i]) : json_null());
  char *line = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
  json_decref(obj);
  PX_REQUIRE(line, "json_dumps failed (out of memory)");
  if (fprintf(f, "%s\n", line) < 0 || fflush(f) != 0)
    px_log_warn("cannot write to %s/%s", dir, file);
  free(line);
}

void px_run_metrics(px_run *run, const char *phase, int64_t step, int n, const char *const *names,
                    const double *values) {
  px_run_record(run->metrics, "metrics.jsonl", run->dir, phase, step, n, names, values);
}

void px_run_timings(px_run *run, const char *phase, int64_t step, int n, const char *const *names,
                    const double *values) {
  px_run_record(run->timings, "timings.jsonl", run->dir, phase, step, n, names, values);
}
