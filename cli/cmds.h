/* cli/cmds.h - the subcommands. Each returns a negative errno with e set on failure (main
 * prints e->msg as one line and exits 1), or the exit status to use (0 on success). */
#ifndef ML_CLI_CMDS_H
#define ML_CLI_CMDS_H

#include "base/err.h"

int cmd_run(int argc, char **argv, struct ml_err *e);
int cmd_image(int argc, char **argv, struct ml_err *e);
int cmd_gc(int argc, char **argv, struct ml_err *e);

#endif
