/*
 * main.c — the proxima command line (DESIGN.md section 7):
 *
 *   proxima COMMAND [options] [-c CONFIG.ini] [section.key=value ...]
 *
 * main reads like the program's life: pick BLIS's kernels, start MPI, parse the command line,
 * resolve the config (defaults < file < command line), run the command, agree on its outcome
 * over the ranks, print the error (rank 0) and exit with the status every rank shares.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxima/blas.h"
#include "proxima/checkpoint.h"
#include "proxima/cli.h"
#include "proxima/comm.h"
#include "proxima/config.h"
#include "proxima/dataset.h"
#include "proxima/error.h"
#include "proxima/fsutil.h"
#include "proxima/generate.h"
#include "proxima/hf.h"
#include "proxima/jsonl.h"
#include "proxima/log.h"
#include "proxima/ppo.h"
#include "proxima/rm.h"
#include "proxima/sft.h"
#include "proxima/signals.h"
#include "proxima/synth.h"

#define PX_MAX_ARGS 256
#define PX_MAX_FLAGS 12

/* A command's option: `--name VALUE` (or `--name=VALUE`) sets config key `key`; with key NULL
 * the value is the command's own (px_opt). A NULL metavar makes it a switch. */
typedef struct px_flag {
  const char *name, *metavar, *key, *help;
} px_flag;

typedef struct px_cli px_cli;

typedef struct px_command {
  const char *name, *synopsis, *summary;
  const char *sections; /* config sections the command reads, for its --help */
  px_flag flags[PX_MAX_FLAGS];
  int n_positional;
  px_status (*run)(const px_cli *cli, const px_config *cfg, px_error *err);
} px_command;

struct px_cli {
  const px_command *cmd;
  const char *config_path;
  const char *settings[PX_MAX_ARGS]; /* "section.key=value", in command-line order */
  char owned[PX_MAX_ARGS][512];      /* settings made from flags */
  int n_settings;
  const char *positional[4];
  int n_positional;
  const char *local[PX_MAX_FLAGS];
  int help;
};

/* ---------------------------------------------------------------------------------------------
 * The commands
 * ------------------------------------------------------------------------------------------- */

/* The value of the command's own option `name` ("--json"): its argument, "1" for a switch that
 * was given, NULL when it was not given. */
static const char *px_opt(const px_cli *cli, const char *name) {
  for (int i = 0; i < PX_MAX_FLAGS && cli->cmd->flags[i].name; i++)
    if (!strcmp(cli->cmd->flags[i].name, name)) return cli->local[i];
  PX_REQUIRE(0, "%s has no option %s", cli->cmd->name, name);
}

static px_status px_cmd_synth(const px_cli *cli, const px_config *cfg, px_error *err) {
  px_status st = PX_OK;
  if (px_comm_rank() == 0) st = px_synth_run(cfg, err);
  return px_comm_agree(st, err);
}

/* The tokenizer `data import --tokenizer` names: "byte", a directory of GPT-2 tokenizer files,
 * or a checkpoint (file or run directory) whose tokenizer to use; without the option,
 * model.tokenizer (and model.tokenizer_dir). Not collective. */
static px_status px_import_tokenizer(const char *arg, const px_config *cfg, px_tokenizer *tok,
                                     px_error *err) {
  if (!arg) return px_tokenizer_load(tok, cfg->model_tokenizer, cfg->model_tokenizer_dir, err);
  if (!strcmp(arg, "byte")) {
    px_tokenizer_byte(tok);
    return PX_OK;
  }
  char probe[4200];
  const char *const names[] = {"vocab.json", "encoder.json", "merges.txt", "vocab.bpe"};
  for (int i = 0; i < 4; i++) {
    snprintf(probe, sizeof probe, "%s/%s", arg, names[i]);
    if (px_fs_exists(probe)) return px_tokenizer_load_dir(tok, arg, err);
  }
  px_error why;
  if (px_ckpt_read_tokenizer(arg, tok, &why) == PX_OK) return PX_OK;
  return px_error_set(err, PX_EINPUT,
                      "--tokenizer %s is not byte, a directory of GPT-2 tokenizer files "
                      "(vocab.json + merges.txt or encoder.json + vocab.bpe) or a checkpoint: %s",
                      arg, why.msg);
}

static px_status px_cmd_import(const px_cli *cli, const px_config *cfg, px_error *err) {
  const char *kind_name = px_opt(cli, "--kind");
  if (!kind_name)
    return px_error_set(err, PX_EINPUT,
                        "data import needs --kind (text, sft, prefs or prompts); see "
                        "'proxima data import --help'");
  int kind = px_data_kind_parse(kind_name);
  if (kind < 0)
    return px_error_set(err, PX_EINPUT,
                        "--kind %s is not a kind (expected text, sft, prefs or prompts)",
                        kind_name);
  const char *in = cli->positional[0], *out = cli->positional[1];
  px_tokenizer tok;
  PX_TRY(px_comm_agree(px_import_tokenizer(px_opt(cli, "--tokenizer"), cfg, &tok, err), err));
  px_log_info("data import: reading %s as %s records (%s tokenizer, %d rank%s)", in, kind_name,
              px_tok_kind_name(tok.kind), px_comm_size(), px_comm_size() == 1 ? "" : "s");
  px_status st = px_jsonl_import_parallel(in, (px_data_kind)kind, &tok, out, err);
  /* Read the file back over every rank, each its own share, as training will. */
  px_dataset ds = {0};
  if (st == PX_OK)
    st = px_comm_agree(px_dataset_read(out, PX_IO_EVERY_RANK, px_comm_rank(), px_comm_size(), kind,
                                       &tok, &ds, err),
                       err);
  if (st == PX_OK)
    px_log_info("data import: wrote %s (%lld %s records)", out, (long long)ds.n_total, kind_name);
  px_dataset_free(&ds);
  px_tokenizer_free(&tok);
  return st;
}

static px_status px_cmd_sft(const px_cli *cli, const px_config *cfg, px_error *err) {
  return px_sft_run(cfg, err);
}

static px_status px_cmd_generate(const px_cli *cli, const px_config *cfg, px_error *err) {
  px_config c = *cfg; /* --greedy: temperature 0 (the strings stay cfg's) */
  if (px_opt(cli, "--greedy")) c.sample_temperature = 0.0;
  return px_cli_generate(&c, px_opt(cli, "--ckpt"), px_opt(cli, "--prompt"),
                         px_opt(cli, "--prompts"), px_opt(cli, "--json") != NULL, err);
}

static px_status px_cmd_rm(const px_cli *cli, const px_config *cfg, px_error *err) {
  return px_rm_run(cfg, err);
}

static px_status px_cmd_ppo(const px_cli *cli, const px_config *cfg, px_error *err) {
  return px_ppo_run(cfg, err);
}

static px_status px_cmd_eval(const px_cli *cli, const px_config *cfg, px_error *err) {
  const char *reward = px_opt(cli, "--reward"), *pairs = px_opt(cli, "--pairs");
  const char *policy = px_opt(cli, "--policy"), *examples_arg = px_opt(cli, "--examples");
  if (policy) {
    const char *prompts =
        px_opt(cli, "--prompts") ? px_opt(cli, "--prompts") : cfg->ppo_eval_prompts;
    if (!prompts[0])
      return px_error_set(err, PX_EINPUT,
                          "eval --policy needs --prompts FILE (or "
                          "ppo.eval_prompts)");
    int examples = 5;
    if (examples_arg) {
      char *end;
      long v = strtol(examples_arg, &end, 10);
      if (*end || v < 0 || v > 1000)
        return px_error_set(err, PX_EINPUT, "--examples %s: expected a count from 0 to 1000",
                            examples_arg);
      examples = (int)v;
    }
    px_cli_eval_args args = {.policy = policy,
                             .base = px_opt(cli, "--base"),
                             .reward = reward,
                             .prompts = prompts,
                             .out = px_opt(cli, "--out"),
                             .examples = examples};
    return px_cli_eval_policy(cfg, &args, err);
  }
  if (!reward || !pairs)
    return px_error_set(err, PX_EINPUT,
                        "eval needs --policy CKPT (a policy against pi_base) or --reward CKPT and "
                        "--pairs FILE (the reward model on preference pairs); see 'proxima eval "
                        "--help'");
  return px_cli_eval_reward(cfg, reward, pairs, err);
}

static px_status px_cmd_score(const px_cli *cli, const px_config *cfg, px_error *err) {
  const char *reward = px_opt(cli, "--reward"), *data = px_opt(cli, "--data");
  if (!reward || !data)
    return px_error_set(err, PX_EINPUT,
                        "score needs --reward CKPT and --data FILE; see "
                        "'proxima score --help'");
  return px_cli_score(cfg, reward, data, px_opt(cli, "--json") != NULL, err);
}

static px_status px_cmd_model_import(const px_cli *cli, const px_config *cfg, px_error *err) {
  (void)cfg;
  return px_hf_import(cli->positional[0], cli->positional[1], err);
}

static px_status px_cmd_model_export(const px_cli *cli, const px_config *cfg, px_error *err) {
  (void)cfg;
  const char *group = px_opt(cli, "--model");
  return px_hf_export(cli->positional[0], group ? group : "policy", cli->positional[1], err);
}

/* ckpt info and ckpt verify read on rank 0; the others wait for its verdict. */
static px_status px_cmd_ckpt_info(const px_cli *cli, const px_config *cfg, px_error *err) {
  px_status st = PX_OK;
  if (px_comm_rank() == 0) st = px_ckpt_info(cli->positional[0], stdout, err), fflush(stdout);
  return px_comm_agree(st, err);
}

static px_status px_cmd_ckpt_verify(const px_cli *cli, const px_config *cfg, px_error *err) {
  px_status st = PX_OK;
  if (px_comm_rank() == 0) st = px_ckpt_verify(cli->positional[0], stdout, err), fflush(stdout);
  return px_comm_agree(st, err);
}

static px_status px_cmd_config(const px_cli *cli, const px_config *cfg, px_error *err) {
  if (px_comm_rank() != 0) return PX_OK;
  if (px_opt(cli, "--ini"))
    px_config_write_ini(cfg, stdout);
  else
    px_config_print_table(stdout);
  return PX_OK;
}

static px_status px_cmd_metrics(const px_cli *cli, const px_config *cfg, px_error *err) {
  px_status st = PX_OK;
  if (px_comm_rank() == 0) st = px_cli_metrics(px_opt(cli, "--json") != NULL, err);
  return px_comm_agree(st, err);
}

static const px_command px_commands[] = {
    {"data synth",
     "[--task arith] [--out DIR] [--seed S]",
     "write the built-in task's data sets (sft, prefs, prompts, eval) as JSONL and HDF5",
     "run synth",
     {{"--task", "NAME", "synth.task", "the built-in task (arith)"},
      {"--out", "DIR", "synth.out", "directory to write to"},
      {"--seed", "S", "run.seed", "seed of every random draw"}},
     0,
     px_cmd_synth},
    {"data import",
     "--kind KIND [--tokenizer byte|DIR|CKPT] IN.jsonl OUT.h5",
     "tokenize a JSONL file into an HDF5 data set (text, sft, prefs or prompts records)",
     "model",
     {{"--kind", "KIND", NULL,
       "text {\"text\"} | sft {\"prompt\",\"completion\"} | prefs "
       "{\"prompt\",\"chosen\",\"rejected\"} | prompts {\"prompt\"[,\"reference\"]}"},
      {"--tokenizer", "byte|DIR|CKPT", NULL,
       "the tokenizer: byte, a directory of GPT-2 tokenizer files (vocab.json + merges.txt or "
       "encoder.json + vocab.bpe), or a checkpoint or run directory whose model's tokenizer to "
       "use (default: model.tokenizer and model.tokenizer_dir)"}},
     2,
     px_cmd_import},
    {"sft",
     "[--init CKPT] [--data FILE.h5] [--run DIR] [--steps N] [--seed S] [--resume auto|CKPT]",
     "supervised fine-tuning of the policy on an sft or text data set (the base model)",
     "run model sft adam",
     {{"--data", "FILE", "sft.data", "the training data set"},
      {"--init", "CKPT", "sft.init",
       "start from this checkpoint's policy (model import's output, a run directory)"},
      {"--run", "DIR", "run.dir", "run directory (config.ini, metrics.jsonl, checkpoints/)"},
      {"--steps", "N", "sft.steps", "optimizer steps"},
      {"--seed", "S", "run.seed", "seed of the initialisation and the data order"},
      {"--resume", "auto|CKPT", "run.resume",
       "continue from run.dir's newest intact checkpoint (auto) or from CKPT"}},
     0,
     px_cmd_sft},
    {"generate",
     "--ckpt FILE (--prompt TEXT | --prompts FILE.h5|FILE.jsonl) [--json] [--temperature T] ...",
     "sample responses from a checkpoint's policy, one line per prompt (prompt TAB response)",
     "sample",
     {{"--ckpt", "FILE", NULL,
       "checkpoint file, or a checkpoints or run directory (its LATEST checkpoint)"},
      {"--prompt", "TEXT", NULL, "one prompt"},
      {"--prompts", "FILE", NULL,
       "prompts: a prompts (or sft, prefs) data set, or JSONL of {\"prompt\": ...} lines"},
      {"--json", NULL, NULL,
       "print JSONL: index, prompt, response, eos, tokens, logprob (the response's sum)"},
      {"--temperature", "T", "sample.temperature", "sampling temperature (0: greedy)"},
      {"--greedy", NULL, NULL, "take the most likely token (temperature 0)"},
      {"--top-k", "K", "sample.top_k", "sample among the K most likely tokens (0: all)"},
      {"--top-p", "P", "sample.top_p", "nucleus sampling threshold (1: off)"},
      {"--max-new-tokens", "N", "sample.max_new_tokens", "response tokens at most"},
      {"--batch", "N", "sample.batch", "sequences generated together per rank"},
      {"--seed", "S", "run.seed", "seed of the sampling draws"}},
     0,
     px_cmd_generate},
    {"rm",
     "[--init SFT_RUN|CKPT] [--data FILE.h5] [--run DIR] [--seed S] [--resume auto|CKPT]",
     "train the reward model on preference pairs (Bradley-Terry), then normalise its score",
     "run model rm adam sample",
     {{"--init", "CKPT", "rm.init", "the SFT checkpoint or run directory its trunk starts from"},
      {"--data", "FILE", "rm.data", "the preference pairs (a prefs data set)"},
      {"--run", "DIR", "run.dir", "run directory (config.ini, metrics.jsonl, checkpoints/)"},
      {"--seed", "S", "run.seed", "seed of the head's initialisation, the data order, sampling"},
      {"--resume", "auto|CKPT", "run.resume",
       "continue from run.dir's newest intact checkpoint (auto) or from CKPT"}},
     0,
     px_cmd_rm},
    {"ppo",
     "[--policy SFT_RUN] [--reward RM_RUN] [--prompts FILE.h5] [--run DIR] [--iterations N] "
     "[--resume auto|CKPT]",
     "fine-tune the policy with PPO: KL-shaped reward, value baseline, clipped updates",
     "run ppo sample adam",
     {{"--policy", "CKPT", "ppo.policy", "the SFT checkpoint or run directory (also pi_base)"},
      {"--reward", "CKPT", "ppo.reward", "the reward-model checkpoint or run directory"},
      {"--prompts", "FILE", "ppo.prompts", "training prompts (a prompts data set)"},
      {"--eval-prompts", "FILE", "ppo.eval_prompts", "held-out prompts with references"},
      {"--run", "DIR", "run.dir", "run directory (config.ini, metrics.jsonl, checkpoints/)"},
      {"--iterations", "N", "ppo.iterations", "collect-then-update iterations"},
      {"--seed", "S", "run.seed", "seed of the sampling and the minibatch order"},
      {"--resume", "auto|CKPT", "run.resume",
       "continue from run.dir's newest intact checkpoint (auto) or from CKPT"}},
     0,
     px_cmd_ppo},
    {"eval",
     "--policy CKPT [--prompts FILE.h5] [--base CKPT] [--reward CKPT] [--out FILE.json] | "
     "--reward CKPT --pairs FILE",
     "a tuned policy against pi_base (gold accuracy sampled and greedy, reward, KL, examples), "
     "or the reward model's accuracy on preference pairs",
     "sample ppo rm",
     {{"--reward", "CKPT", NULL,
       "reward checkpoint or run (with --policy: default the policy checkpoint's reward group)"},
      {"--pairs", "FILE", NULL,
       "preference pairs: a prefs data set, or JSONL of {\"prompt\",\"chosen\",\"rejected\"} "
       "lines"},
      {"--policy", "CKPT", NULL, "the tuned policy: a checkpoint, or a run directory (LATEST)"},
      {"--base", "CKPT", NULL, "pi_base (default: the policy checkpoint's reference group)"},
      {"--prompts", "FILE", NULL, "prompts with references (default: ppo.eval_prompts)"},
      {"--out", "FILE", NULL, "also write the results as JSON"},
      {"--examples", "N", NULL, "prompts shown with both answers (default 5)"}},
     0,
     px_cmd_eval},
    {"score",
     "--reward CKPT --data FILE [--json]",
     "the reward model's normalised score of each (prompt, completion), one line each",
     "rm",
     {{"--reward", "CKPT", NULL, "reward checkpoint, or its run or checkpoints directory"},
      {"--data", "FILE", NULL, "an sft data set, or JSONL of {\"prompt\",\"completion\"} lines"},
      {"--json", NULL, NULL, "print JSONL: index, score, prompt, completion"}},
     0,
     px_cmd_score},
    {"model import",
     "HF_DIR OUT.h5",
     "read a Hugging Face GPT-2 directory (config.json, model.safetensors or its shards, "
     "vocab.json, merges.txt) into a checkpoint: sft --init, rm --init, ppo --policy take it",
     "",
     {{NULL, NULL, NULL, NULL}},
     2,
     px_cmd_model_import},
    {"model export",
     "CKPT OUT_DIR [--model policy|reference|value|reward]",
     "write a checkpoint's model as a Hugging Face GPT-2 directory (config.json, "
     "model.safetensors, vocab.json, merges.txt)",
     "",
     {{"--model", "NAME", NULL,
       "which model (default policy): an LM head loads as GPT2LMHeadModel, a scalar head as "
       "GPT2ForSequenceClassification (README, Bring your own model)"}},
     2,
     px_cmd_model_export},
    {"ckpt info",
     "FILE|DIR",
     "summarise a checkpoint (DIR: a run's LATEST): step, models, moments, state, config",
     "",
     {{NULL, NULL, NULL, NULL}},
     1,
     px_cmd_ckpt_info},
    {"ckpt verify",
     "FILE|DIR",
     "read a checkpoint (DIR: a run's LATEST) whole: every checksum, the schema; exit 1 if bad",
     "",
     {{NULL, NULL, NULL, NULL}},
     1,
     px_cmd_ckpt_verify},
    {"config",
     "[--ini] [-c FILE] [section.key=value ...]",
     "list every configuration key with its type, default and meaning",
     "",
     {{"--ini", NULL, NULL, "print the resolved configuration as an INI file instead"}},
     0,
     px_cmd_config},
    {"metrics",
     "[--json]",
     "list every stage's metrics: key, file, how the ranks agree on it, the plot it is drawn in",
     "",
     {{"--json", NULL, NULL, "print JSON (what scripts/report.py draws its plots from)"}},
     0,
     px_cmd_metrics},
};
static const int px_n_commands = (int)(sizeof px_commands / sizeof px_commands[0]);

/* ---------------------------------------------------------------------------------------------
 * Help and version
 * ------------------------------------------------------------------------------------------- */

static void px_print_usage(FILE *out) {
  fprintf(out, "Usage: proxima COMMAND [options] [-c CONFIG.ini] [section.key=value ...]\n"
               "       proxima --help | --version | COMMAND --help\n\n"
               "RLHF with PPO on CPU clusters: MPI ranks, OpenMP threads, BLIS, parallel HDF5.\n"
               "Run it under mpiexec or srun; one rank is the smallest case.\n\nCommands:\n");
  for (int i = 0; i < px_n_commands; i++)
    fprintf(out, "  %-13s %s\n", px_commands[i].name, px_commands[i].summary);
  fprintf(out,
          "\nConfiguration: defaults, then the INI file of -c, then section.key=value arguments\n"
          "(and command options), later ones winning. 'proxima config' lists every key.\n\n"
          "Exit status: 0 done; 1 bad usage, config or input; 2 a failure while running;\n"
          "3 stopped by SIGTERM or SIGUSR1 after writing a checkpoint (continue with\n"
          "--resume auto); 128+N ended by a second signal N.\n");
}

static void px_print_command_help(const px_command *cmd, FILE *out) {
  fprintf(out, "Usage: proxima %s %s\n\n%s.\n", cmd->name, cmd->synopsis, cmd->summary);
  fprintf(out, "\nOptions:\n");
  for (int i = 0; i < PX_MAX_FLAGS && cmd->flags[i].name; i++) {
    const px_flag *f = &cmd->flags[i];
    char left[64];
    snprintf(left, sizeof left, "%s%s%s", f->name, f->metavar ? " " : "",
             f->metavar ? f->metavar : "");
    fprintf(out, "  %-16s %s%s%s%s\n", left, f->help, f->key ? " (sets " : "", f->key ? f->key : "",
            f->key ? ")" : "");
  }
  fprintf(out, "  %-16s %s\n  %-16s %s\n", "-c FILE", "read configuration keys from an INI file",
          "-h, --help", "show this help");
  if (cmd->sections[0]) {
    fprintf(out, "\nConfiguration keys it reads (set in the INI file or as section.key=value):\n");
    for (int i = 0; i < px_config_n_keys; i++) {
      const px_config_key *k = &px_config_table[i];
      char word[64];
      snprintf(word, sizeof word, " %s ", k->section);
      char sections[128];
      snprintf(sections, sizeof sections, " %s ", cmd->sections);
      if (strstr(sections, word))
        fprintf(out, "  %-22s %s (default %s)\n", k->full, k->help, k->def[0] ? k->def : "\"\"");
    }
  }
}

static void px_print_version(FILE *out) {
  char mpi[256], io[128];
  fprintf(out, "proxima %s\n  %s\n  %s\n  %s\n  OpenMP: %d threads\n", PX_VERSION,
          px_blas_describe(), px_io_library(io, sizeof io), px_comm_library(mpi, sizeof mpi),
          omp_get_max_threads());
}

/* ---------------------------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------------------------- */

static const px_command *px_find_command(int argc, char **argv, int *used, px_error *err) {
  char two[128] = "";
  if (argc > 1) snprintf(two, sizeof two, "%s %s", argv[0], argv[1]);
  const px_command *best = NULL;
  int best_d = 1 << 30;
  for (int i = 0; i < px_n_commands; i++) {
    const px_command *c = &px_commands[i];
    if (argc > 1 && strcmp(c->name, two) == 0) return *used = 2, c;
    if (strcmp(c->name, argv[0]) == 0) return *used = 1, c;
    int d = px_edit_distance(strchr(c->name, ' ') && argc > 1 ? two : argv[0], c->name);
    if (d < best_d) best_d = d, best = c;
  }
  /* A command group without (or with a wrong) subcommand: list the group's commands. */
  char subs[256] = "";
  size_t len = strlen(argv[0]);
  for (int i = 0, k = 0; i < px_n_commands; i++)
    if (!strncmp(px_commands[i].name, argv[0], len) && px_commands[i].name[len] == ' ')
      k += snprintf(subs + k, sizeof subs - (size_t)k, "%s'%s'", k ? " or " : "",
                    px_commands[i].name);
  if (subs[0])
    px_error_set(err, PX_EINPUT, "'%s' needs a subcommand: %s", argv[0], subs);
  else
    px_error_set(err, PX_EINPUT, "unknown command '%s' (did you mean '%s'?); see 'proxima --help'",
                 argc > 1 && strchr(best->name, ' ') ? two : argv[0], best->name);
  return NULL;
}

static px_status px_parse(int argc, char **argv, px_cli *cli, px_error *err) {
  int used = 0;
  cli->cmd = px_find_command(argc, argv, &used, err);
  if (!cli->cmd) return PX_EINPUT;
  const px_command *cmd = cli->cmd;
  for (int i = used; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      cli->help = 1;
      continue;
    }
    if (!strcmp(a, "-c") || !strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
      if (a[2] == 'c' && a[8] == '=')
        cli->config_path = a + 9;
      else if (i + 1 < argc)
        cli->config_path = argv[++i];
      else
        return px_error_set(err, PX_EINPUT, "%s needs a file name", a);
      continue;
    }
    if (a[0] == '-' && a[1] == '-') {
      const char *eq = strchr(a, '=');
      size_t len = eq ? (size_t)(eq - a) : strlen(a);
      const px_flag *flag = NULL;
      int fi = 0, best = 1 << 30;
      const char *nearest = NULL;
      for (; fi < PX_MAX_FLAGS && cmd->flags[fi].name; fi++) {
        if (strlen(cmd->flags[fi].name) == len && !strncmp(cmd->flags[fi].name, a, len)) {
          flag = &cmd->flags[fi];
          break;
        }
        int d = px_edit_distance(a, cmd->flags[fi].name);
        if (d < best) best = d, nearest = cmd->flags[fi].name;
      }
      if (!flag) {
        if (nearest)
          return px_error_set(err, PX_EINPUT, "unknown option '%s' for '%s' (did you mean '%s'?)",
                              a, cmd->name, nearest);
        return px_error_set(err, PX_EINPUT, "'%s' takes no option '%s'; see 'proxima %s --help'",
                            cmd->name, a, cmd->name);
      }
      const char *value = "1";
      if (flag->metavar) {
        if (eq)
          value = eq + 1;
        else if (i + 1 < argc)
          value = argv[++i];
        else
          return px_error_set(err, PX_EINPUT, "%s needs a value (%s)", flag->name, flag->metavar);
      } else if (eq) {
        return px_error_set(err, PX_EINPUT, "%s takes no value", flag->name);
      }
      if (!flag->key) {
        cli->local[fi] = value;
      } else {
        if (cli->n_settings == PX_MAX_ARGS)
          return px_error_set(err, PX_EINPUT, "too many arguments");
        snprintf(cli->owned[cli->n_settings], sizeof cli->owned[0], "%s=%s", flag->key, value);
        cli->settings[cli->n_settings] = cli->owned[cli->n_settings];
        cli->n_settings++;
      }
      continue;
    }
    if (a[0] != '-' && strchr(a, '=') && strchr(a, '.') && strchr(a, '.') < strchr(a, '=')) {
      if (cli->n_settings == PX_MAX_ARGS) return px_error_set(err, PX_EINPUT, "too many arguments");
      cli->settings[cli->n_settings++] = a;
      continue;
    }
    if (a[0] == '-' && a[1])
      return px_error_set(err, PX_EINPUT, "unknown option '%s'; see 'proxima %s --help'", a,
                          cmd->name);
    if (cli->n_positional == cmd->n_positional || cli->n_positional == 4)
      return px_error_set(err, PX_EINPUT,
                          "unexpected argument '%s' (a setting is written section.key=value); see "
                          "'proxima %s --help'",
                          a, cmd->name);
    cli->positional[cli->n_positional++] = a;
  }
  if (!cli->help && cli->n_positional < cmd->n_positional)
    return px_error_set(err, PX_EINPUT, "'%s' needs %d arguments: proxima %s %s", cmd->name,
                        cmd->n_positional, cmd->name, cmd->synopsis);
  return PX_OK;
}

/* Defaults, then the file (read by rank 0, sent to all), then the command line. Collective. */
static px_status px_resolve_config(const px_cli *cli, px_config *cfg, px_error *err) {
  px_config_init(cfg);
  if (cli->config_path) {
    char *text = NULL;
    size_t len = 0;
    px_status st = PX_OK;
    if (px_comm_rank() == 0) {
      st = px_fs_read_file(cli->config_path, (size_t)1 << 20, &text, &len, err);
      if (st != PX_OK) st = PX_EINPUT; /* a config we cannot read is the user's to fix */
    }
    PX_TRY(px_comm_agree(st, err));
    uint64_t n = len;
    px_comm_bcast(&n, sizeof n, 0);
    if (px_comm_rank() != 0) text = px_malloc((size_t)n + 1);
    px_comm_bcast(text, (size_t)n + 1, 0);
    st = px_config_parse_ini(cfg, text, cli->config_path, err);
    free(text);
    PX_TRY(st);
  }
  for (int i = 0; i < cli->n_settings; i++) PX_TRY(px_config_override(cfg, cli->settings[i], err));
  return PX_OK;
}

static px_log_level px_level_of(const char *name) {
  if (!strcmp(name, "debug")) return PX_LOG_DEBUG;
  if (!strcmp(name, "warn")) return PX_LOG_WARN;
  if (!strcmp(name, "quiet")) return PX_LOG_QUIET;
  return PX_LOG_INFO;
}

/* ---------------------------------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------------------------------- */

static int px_exit(int status) {
  px_log_close_file();
  px_comm_finalize();
  return status;
}

int main(int argc, char **argv) {
  px_blas_init(); /* before MPI: it may fork to test the kernel set */
  px_comm_init(&argc, &argv);
  px_signals_install(); /* SIGTERM, SIGUSR1: checkpoint at the next step and exit 3 */
  px_log_init(PX_LOG_INFO);
  const int root = px_comm_rank() == 0;

  if (argc < 2) {
    if (root) px_print_usage(stderr);
    return px_exit(PX_EINPUT);
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    if (root) px_print_usage(stdout);
    return px_exit(PX_OK);
  }
  if (!strcmp(argv[1], "--version")) {
    if (root) px_print_version(stdout);
    return px_exit(PX_OK);
  }

  static px_cli cli; /* large: keep it off the stack */
  px_error err = {""};
  if (px_parse(argc - 1, argv + 1, &cli, &err) != PX_OK) {
    if (root) px_log_error("%s", err.msg);
    return px_exit(PX_EINPUT);
  }
  if (cli.help) {
    if (root) px_print_command_help(cli.cmd, stdout);
    return px_exit(PX_OK);
  }

  px_config cfg;
  px_status st = px_resolve_config(&cli, &cfg, &err);
  if (st == PX_OK) {
    px_log_set_level(px_level_of(cfg.run_log_level));
    px_log_info("proxima %s: %s on %d rank%s x %d thread%s; %s", PX_VERSION, cli.cmd->name,
                px_comm_size(), px_comm_size() > 1 ? "s" : "", omp_get_max_threads(),
                omp_get_max_threads() > 1 ? "s" : "", px_blas_describe());
    st = cli.cmd->run(&cli, &cfg, &err);
  }
  if (st == PX_EINTERRUPTED && root)
    px_log_warn("%s", err.msg);
  else if (st != PX_OK && root)
    px_log_error("%s", err.msg);
  px_config_free(&cfg);
  return px_exit((int)st);
}
