/*
 * Unit test runner: runs every group in UNIT_GROUPS (or only those named on
 * the command line) and exits non-zero when any test failed.
 */
#include <stdio.h>
#include <string.h>

#include "unit.h"

struct group {
    const char *name;
    int (*run)(void);
};

static const struct group groups[] = {
#define UNIT_ENTRY(name) {#name, name},
    UNIT_GROUPS(UNIT_ENTRY)
#undef UNIT_ENTRY
};

int main(int argc, char **argv)
{
    int failed = 0;
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++) {
                wanted |= strcmp(argv[a], groups[i].name) == 0;
            }
            if (!wanted) {
                continue;
            }
        }
        failed += groups[i].run();
    }
    return failed ? 1 : 0;
}
