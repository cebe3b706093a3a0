/* `wick weights transfer`: copies one checkpoint's tensors into another's layout by an
 * association of their keys (weights/transfer.h), and reports what it did. */
#ifndef WK_CLI_WEIGHTS_H
#define WK_CLI_WEIGHTS_H

/* argv[0] is "weights". Returns the exit status: 0 on success, 1 on error or (with
 * --strict) an imperfect fit, 2 on bad usage. Main thread only. */
int wk_cmd_weights(int argc, char **argv);

#endif
