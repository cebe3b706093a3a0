/* `wick serve`: torchserve's command line, run in the foreground. */
#ifndef WK_CLI_SERVE_H
#define WK_CLI_SERVE_H

int wk_cmd_serve(int argc, char **argv);

#endif
