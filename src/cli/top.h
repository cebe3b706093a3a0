/* `wick top`: a running server's GET /status.json as a table that refreshes in the
 * terminal, like top; --once prints one frame for scripts. The frame itself is laid out by
 * top_format.c. */
#ifndef WK_CLI_TOP_H
#define WK_CLI_TOP_H

/* argv[0] is "top". Returns the exit status: 0 after q, Ctrl-C, or a frame printed by
 * --once; 1 when --once could not read the server (the reason on stderr); 2 on bad usage.
 * After SIGTERM or SIGHUP the terminal is restored and the process ends by that signal.
 * Main thread only. */
int wk_cmd_top(int argc, char **argv);

#endif
