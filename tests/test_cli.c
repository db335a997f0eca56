#include "test_util.h"
void px_test_register(void) {}
