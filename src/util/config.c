/*
 * config.c — the configuration table (PX_CONFIG_KEYS in config.h), INI parsing with inih, typed
 * values with their limits, command-line overrides, and the "did you mean" of every error.
 */
#include "proxima/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const px_config_key px_config_table[] = {
#define PX_CONFIG_ROW(section, name, type, def, limits, help)                                      \
  {#section,                                                                                       \
   #name,                                                                                          \
   #section "." #name,                                                                             \
   PX_CFG_##type,                                                                                  \
   def,                                                                                            \
   limits,                                                                                         \
   help,                                                                                           \
   offsetof(px_config, section##_##name)},
    PX_CONFIG_KEYS(PX_CONFIG_ROW)
#undef PX_CONFIG_ROW
};
const int px_config_n_keys = (int)(sizeof px_config_table / sizeof px_config_table[0]);

static const char *px_type_name[] = {"int", "real", "bool", "string", "choice"};

static void *px_field(px_config *cfg, const px_config_key *k) { return (char *)cfg + k->offset; }
static const void *px_cfield(const px_config *cfg, const px_config_key *k) {
  return (const char *)cfg + k->offset;
}

const px_config_key *px_config_find(const char *full) {
  for (int i = 0; i < px_config_n_keys; i++)
    if (strcmp(px_config_table[i].full, full) == 0) return &px_config_table[i];
  return NULL;
}

/* Levenshtein distance, case-insensitive; names are short, so two rows of ints suffice. */
int px_edit_distance(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  if (lb > 127) lb = 127;
  int prev[128], cur[128];
  for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
      int best = prev[j - 1] + cost;
      if (prev[j] + 1 < best) best = prev[j] + 1;
      if (cur[j - 1] + 1 < best) best = cur[j - 1] + 1;
      cur[j] = best;
    }
    memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
  }
  return prev[lb];
}

const char *px_config_nearest(const char *full) {
  /* Score on the whole dotted name, and on the name part alone (one more), so that a right
   * name in the wrong section ("seed" for "run.seed") is found too. */
  const char *dot = strrchr(full, '.');
  const char *name = dot ? dot + 1 : full;
  const char *best = px_config_table[0].full;
  int best_d = 1 << 30;
  for (int i = 0; i < px_config_n_keys; i++) {
    const px_config_key *k = &px_config_table[i];
    int d = px_edit_distance(full, k->full);
    int dn = px_edit_distance(name, k->name) + 1;
    if (dn < d) d = dn;
    if (d < best_d) best_d = d, best = k->full;
  }
  return best;
}

/* Parses "lo..hi" (either end may be empty) into bounds; absent ends are infinite. */
static void px_parse_limits(const char *limits, double *lo, double *hi) {
  *lo = -INFINITY;
  *hi = INFINITY;
  const char *dots = strstr(limits, "..");
  if (!dots) return;
  if (dots != limits) *lo = strtod(limits, NULL);
  if (dots[2]) *hi = strtod(dots + 2, NULL);
}

static int px_choice_ok(const char *choices, const char *value) {
  size_t n = strlen(value);
  for (const char *p = choices; *p;) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    if (len == n && strncmp(p, value, n) == 0) return 1;
    if (!bar) break;
    p = bar + 1;
  }
  return 0;
}

static px_status px_bad_value(px_error *err, const char *where, const px_config_key *k,
                              const char *value, const char *why) {
  char expected[256];
  const char *noun = k->type == PX_CFG_INT ? "an integer" : "a number";
  switch (k->type) {
  case PX_CFG_INT:
  case PX_CFG_REAL:
    snprintf(expected, sizeof expected, "%s%s%s", noun, k->limits[0] ? " in " : "", k->limits);
    break;
  case PX_CFG_BOOL: snprintf(expected, sizeof expected, "true or false"); break;
  case PX_CFG_CHOICE: snprintf(expected, sizeof expected, "one of %s", k->limits); break;
  default: snprintf(expected, sizeof expected, "a string"); break;
  }
  return px_error_set(err, PX_EINPUT, "%s: %s = '%s' %s (expected %s)", where, k->full, value, why,
                      expected);
}

px_status px_config_set(px_config *cfg, const char *key, const char *value, const char *where,
                        px_error *err) {
  const px_config_key *k = px_config_find(key);
  if (!k)
    return px_error_set(err, PX_EINPUT, "%s: unknown key '%s' (did you mean '%s'?)", where, key,
                        px_config_nearest(key));
  double lo, hi;
  px_parse_limits(k->limits, &lo, &hi);
  char *end = NULL;
  switch (k->type) {
  case PX_CFG_INT: {
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (end == value || *end || errno == ERANGE)
      return px_bad_value(err, where, k, value, "is not an integer");
    if ((double)v < lo || (double)v > hi)
      return px_bad_value(err, where, k, value, "is out of range");
    *(int64_t *)px_field(cfg, k) = (int64_t)v;
    break;
  }
  case PX_CFG_REAL: {
    errno = 0;
    double v = strtod(value, &end);
    if (end == value || *end || errno == ERANGE || !isfinite(v))
      return px_bad_value(err, where, k, value, "is not a finite number");
    if (v < lo || v > hi) return px_bad_value(err, where, k, value, "is out of range");
    *(double *)px_field(cfg, k) = v;
    break;
  }
  case PX_CFG_BOOL: {
    int v;
    if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") || !strcasecmp(value, "on") ||
        !strcmp(value, "1"))
      v = 1;
    else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcasecmp(value, "off") ||
             !strcmp(value, "0"))
      v = 0;
    else
      return px_bad_value(err, where, k, value, "is not a boolean");
    *(int *)px_field(cfg, k) = v;
    break;
  }
  case PX_CFG_CHOICE:
    if (!px_choice_ok(k->limits, value))
      return px_bad_value(err, where, k, value, "is not allowed");
    /* fall through */
  case PX_CFG_STR: {
    char **slot = px_field(cfg, k);
    free(*slot);
    *slot = px_strdup(value);
    break;
  }
  }
  return PX_OK;
}

void px_config_init(px_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  for (int i = 0; i < px_config_n_keys; i++) {
    const px_config_key *k = &px_config_table[i];
    px_status st = px_config_set(cfg, k->full, k->def, "default", NULL);
    PX_REQUIRE(st == PX_OK, "the default of %s ('%s') is invalid", k->full, k->def);
  }
}

void px_config_free(px_config *cfg) {
  for (int i = 0; i < px_config_n_keys; i++) {
    const px_config_key *k = &px_config_table[i];
    if (k->type == PX_CFG_STR || k->type == PX_CFG_CHOICE) {
      char **slot = px_field(cfg, k);
      free(*slot);
      *slot = NULL;
    }
  }
}

px_status px_config_override(px_config *cfg, const char *arg, px_error *err) {
  const char *eq = strchr(arg, '=');
  if (!eq || eq == arg)
    return px_error_set(err, PX_EINPUT,
                        "command line: '%s' is not an override (expected section.key=value)", arg);
  char key[256];
  size_t n = (size_t)(eq - arg);
  if (n >= sizeof key)
    return px_error_set(err, PX_EINPUT, "command line: key too long in '%.60s...'", arg);
  memcpy(key, arg, n);
  key[n] = '\0';
  return px_config_set(cfg, key, eq + 1, "command line", err);
}

/* ---------------------------------------------------------------------------------------------
 * INI text through inih. A reader of our own hands inih one line at a time, so the handler
 * knows the line it is on (Debian's inih is built without INI_HANDLER_LINENO) and a line too
 * long for inih's buffer is reported instead of being split in two.
 * ------------------------------------------------------------------------------------------- */

typedef struct px_ini_state {
  px_config *cfg;
  const char *where;
  const char *next; /* the rest of the text */
  int line;         /* the line inih is on */
  int error_line;   /* first line with an error, 0 if none */
  px_error *err;
} px_ini_state;

static char *px_ini_reader(char *buf, int size, void *stream) {
  px_ini_state *s = stream;
  if (!*s->next) return NULL;
  const char *nl = strchr(s->next, '\n');
  size_t len = nl ? (size_t)(nl - s->next) + 1 : strlen(s->next);
  s->line++;
  if (len > (size_t)size - 1) {
    if (!s->error_line) {
      s->error_line = s->line;
      px_error_set(s->err, PX_EINPUT, "%s:%d: line is longer than %d characters", s->where, s->line,
                   size - 2);
    }
    len = 0; /* hand inih an empty line instead */
  }
  memcpy(buf, s->next, len);
  buf[len] = '\0';
  s->next += nl ? (size_t)(nl - s->next) + 1 : strlen(s->next);
  return buf;
}

static int px_ini_handler(void *user, const char *section, const char *name, const char *value) {
  px_ini_state *s = user;
  if (s->error_line) return 1; /* keep the first error only */
  char key[512], where[512];
  snprintf(key, sizeof key, "%s%s%s", section, section[0] ? "." : "", name);
  snprintf(where, sizeof where, "%s:%d", s->where, s->line);
  if (px_config_set(s->cfg, key, value, where, s->err) != PX_OK) s->error_line = s->line;
  return 1;
}

px_status px_config_parse_ini(px_config *cfg, const char *text, const char *where, px_error *err) {
  px_ini_state s = {cfg, where, text, 0, 0, err};
  int rc = ini_parse_stream(px_ini_reader, &s, px_ini_handler, &s);
  if (rc < 0) return px_error_set(err, PX_ERUN, "%s: the INI parser ran out of memory", where);
  if (rc > 0 && (!s.error_line || rc < s.error_line))
    return px_error_set(err, PX_EINPUT,
                        "%s:%d: cannot parse this line (expected [section], key = value, or a "
                        "comment starting with ; or #)",
                        where, rc);
  return s.error_line ? PX_EINPUT : PX_OK;
}

/* ------------------------------------------------------------------------------------------- */

const char *px_config_format(const px_config *cfg, const px_config_key *k, char *buf, size_t n) {
  const void *f = px_cfield(cfg, k);
  switch (k->type) {
  case PX_CFG_INT: snprintf(buf, n, "%lld", (long long)*(const int64_t *)f); break;
  case PX_CFG_REAL: snprintf(buf, n, "%.17g", *(const double *)f); break;
  case PX_CFG_BOOL: snprintf(buf, n, "%s", *(const int *)f ? "true" : "false"); break;
  default: snprintf(buf, n, "%s", *(char *const *)f ? *(char *const *)f : ""); break;
  }
  /* %.17g round-trips; show the shortest form that still does ("10", not "1e+01") */
  if (k->type == PX_CFG_REAL) {
    double v = *(const double *)f;
    for (int prec = 1; prec <= 17; prec++) {
      char tmp[64];
      snprintf(tmp, sizeof tmp, "%.*g", prec, v);
      if (strtod(tmp, NULL) == v && strlen(tmp) < strlen(buf)) snprintf(buf, n, "%s", tmp);
    }
  }
  return buf;
}

void px_config_write_ini(const px_config *cfg, FILE *out) {
  const char *section = "";
  for (int i = 0; i < px_config_n_keys; i++) {
    const px_config_key *k = &px_config_table[i];
    if (strcmp(section, k->section) != 0) {
      fprintf(out, "%s[%s]\n", i ? "\n" : "", k->section);
      section = k->section;
    }
    char value[4096];
    fprintf(out, "; %s\n%s = %s\n", k->help, k->name,
            px_config_format(cfg, k, value, sizeof value));
  }
}

char *px_config_to_text(const px_config *cfg) {
  char *text = NULL;
  size_t len = 0;
  FILE *mem = open_memstream(&text, &len);
  PX_REQUIRE(mem, "open_memstream failed");
  px_config_write_ini(cfg, mem);
  PX_REQUIRE(fclose(mem) == 0 && text, "writing the config to memory failed");
  return text;
}

void px_config_print_table(FILE *out) {
  fprintf(out, "%-24s %-7s %-12s %-22s %s\n", "KEY", "TYPE", "DEFAULT", "ALLOWED", "MEANING");
  for (int i = 0; i < px_config_n_keys; i++) {
    const px_config_key *k = &px_config_table[i];
    fprintf(out, "%-24s %-7s %-12s %-22s %s\n", k->full, px_type_name[k->type],
            k->def[0] ? k->def : "\"\"", k->limits[0] ? k->limits : "any", k->help);
  }
}
