/*
 * fuzz_config.c — the INI config parser (px_config_parse_ini, inih underneath) and the
 * command-line override on any text. A bad text must be PX_EINPUT with a message; a good one
 * must survive the round trip a run directory makes: the resolved config.ini that
 * px_config_to_text writes parses back to the same configuration.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "proxima/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';

  px_config cfg;
  px_config_init(&cfg);
  px_error err = {""};
  px_status st = px_config_parse_ini(&cfg, text, "fuzz.ini", &err);
  PX_FUZZ_CHECK(st == PX_OK || (st == PX_EINPUT && err.msg[0]) || st == PX_ERUN);
  if (st == PX_OK) {
    char *resolved = px_config_to_text(&cfg);
    px_config again;
    px_config_init(&again);
    px_error err2 = {""};
    st = px_config_parse_ini(&again, resolved, "config.ini", &err2);
    if (st != PX_OK) fprintf(stderr, "fuzz: the resolved config does not parse: %s\n", err2.msg);
    PX_FUZZ_CHECK(st == PX_OK);
    char *resolved2 = px_config_to_text(&again);
    PX_FUZZ_CHECK(strcmp(resolved, resolved2) == 0);
    free(resolved2);
    free(resolved);
    px_config_free(&again);
  }

  /* The first line as a command-line override (section.key=value). */
  text[strcspn(text, "\n")] = '\0';
  px_error err3 = {""};
  st = px_config_override(&cfg, text, &err3);
  PX_FUZZ_CHECK(st == PX_OK || (st == PX_EINPUT && err3.msg[0]));

  px_config_free(&cfg);
  free(text);
  return 0;
}
