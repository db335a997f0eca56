/*
 * metrics.c — `proxima metrics`: every stage's metrics table (stage.h) as a user reads it, or
 * as JSON for scripts/report.py, which draws its plots from it.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "proxima/cli.h"
#include "proxima/ppo.h"
#include "proxima/rm.h"
#include "proxima/sft.h"
#include "proxima/text.h"

static const px_stage_table *const px_tables[] = {&px_sft_table, &px_rm_table, &px_ppo_table};
enum { PX_N_TABLES = sizeof px_tables / sizeof px_tables[0] };

static const char *px_metric_file(const px_metric *m) {
  return m->flags & PX_METRIC_TIMING ? "timings.jsonl" : "metrics.jsonl";
}

static const char *px_metric_reduce_name(const px_metric *m) {
  return m->reduce == PX_METRIC_SUM ? "summed" : "same";
}

static json_t *px_metric_json(const px_metric *m) {
  json_t *o = json_object();
  json_object_set_new(o, "name", json_string(m->name));
  json_object_set_new(o, "file", json_string(px_metric_file(m)));
  json_object_set_new(o, "reduce", json_string(px_metric_reduce_name(m)));
  json_object_set_new(o, "eval_only", json_boolean(m->flags & PX_METRIC_EVAL));
  json_object_set_new(o, "rate", json_boolean(m->flags & PX_METRIC_RATE));
  json_object_set_new(o, "label", m->label ? json_string(m->label) : json_null());
  json_object_set_new(o, "plot", m->plot ? json_string(m->plot) : json_null());
  json_object_set_new(o, "curve", m->curve ? json_string(m->curve) : json_null());
  json_object_set_new(o, "axis", json_string(m->flags & PX_METRIC_RIGHT ? "right" : "left"));
  return o;
}

static json_t *px_table_json(const px_stage_table *t) {
  json_t *o = json_object(), *ms = json_array(), *ps = json_array();
  json_object_set_new(o, "stage", json_string(t->name));
  json_object_set_new(o, "unit", json_string(t->unit));
  for (int k = 0; k < t->n_metrics; k++) json_array_append_new(ms, px_metric_json(&t->metrics[k]));
  for (int k = 0; k < t->n_plots; k++) {
    json_t *p = json_object();
    json_object_set_new(p, "name", json_string(t->plots[k].name));
    json_object_set_new(p, "title", json_string(t->plots[k].title));
    json_object_set_new(p, "ylabel", json_string(t->plots[k].ylabel));
    json_array_append_new(ps, p);
  }
  json_object_set_new(o, "metrics", ms);
  json_object_set_new(o, "plots", ps);
  return o;
}

px_status px_cli_metrics(int json, px_error *err) {
  px_text out = {NULL, 0, 0};
  if (json) {
    json_t *all = json_array();
    for (int i = 0; i < PX_N_TABLES; i++) json_array_append_new(all, px_table_json(px_tables[i]));
    char *text = json_dumps(all, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(all);
    PX_REQUIRE(text, "json_dumps failed (out of memory)");
    px_text_str(&out, text);
    px_text_str(&out, "\n");
    free(text);
  } else {
    char line[512];
    for (int i = 0; i < PX_N_TABLES; i++) {
      const px_stage_table *t = px_tables[i];
      snprintf(line, sizeof line,
               "%s%s: records of phase \"%s\", by %s\n  %-24s %-14s %-7s %-6s %s\n", i ? "\n" : "",
               t->name, t->name, t->unit, "key", "file", "ranks", "when", "plot");
      px_text_str(&out, line);
      for (int k = 0; k < t->n_metrics; k++) {
        const px_metric *m = &t->metrics[k];
        snprintf(line, sizeof line, "  %-24s %-14s %-7s %-6s %s%s%s%s\n", m->name,
                 px_metric_file(m), px_metric_reduce_name(m),
                 m->flags & PX_METRIC_EVAL ? "eval" : "every", m->plot ? m->plot : "-",
                 m->plot ? " (" : "", m->plot ? m->curve : "", m->plot ? ")" : "");
        px_text_str(&out, line);
      }
    }
    px_text_str(&out, "\nranks: summed over the ranks, or the same on every rank; when: in every "
                      "record, or only in those of evaluation steps\n");
  }
  px_status st = px_text_write_stdout(out.p, out.n, err);
  px_text_free(&out);
  return st;
}
