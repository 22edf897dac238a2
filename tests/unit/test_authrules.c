/* Placeholder until this module's tests land; replaced by the real group. */
#include "unit.h"

int test_authrules(void) { return 0; }
