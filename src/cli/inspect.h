/* `wick inspect ARCHIVE`: shows a model archive's manifest, files and config without
 * running anything from it. */
#ifndef WK_CLI_INSPECT_H
#define WK_CLI_INSPECT_H

/* argv[0] is "inspect". Returns the exit status: 0 on success, 1 on error (printed to
 * stderr as "wick inspect: <message>"). Main thread only. */
int wk_cmd_inspect(int argc, char **argv);

#endif
