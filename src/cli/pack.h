/* `wick pack`: builds a model archive with torch-model-archiver's flags (.mar zip,
 * stored .mar, .tar.gz or a plain directory) and its MAR-INF/MANIFEST.json. */
#ifndef WK_CLI_PACK_H
#define WK_CLI_PACK_H

/* argv[0] is "pack". Returns the exit status: 0 on success, 1 on any error (printed to
 * stderr as "wick pack: <message>"). Main thread only. */
int wk_cmd_pack(int argc, char **argv);

#endif
