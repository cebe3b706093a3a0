/* The wick command: dispatches to serve, pack, inspect, weights, top. */
#include <stdio.h>
#include <string.h>

#include "backend/torch.h"
#include "cli/inspect.h"
#include "cli/pack.h"
#include "cli/serve.h"
#include "cli/top.h"
#include "cli/weights.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: wick COMMAND [ARGS]\n"
          "\n"
          "  serve     serve models over HTTP (torchserve's flags)\n"
          "  pack      build a model archive (torch-model-archiver's flags)\n"
          "  inspect   show what an archive holds, without running it\n"
          "  weights   transfer: copy a checkpoint into another layout (torch_liberator)\n"
          "  top       a running server's status, refreshed in the terminal (GET /status.json)\n"
          "\n"
          "wick COMMAND --help shows a command's options. wick --version prints the version.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "serve") == 0) return wk_cmd_serve(argc - 1, argv + 1);
  if (strcmp(cmd, "pack") == 0) return wk_cmd_pack(argc - 1, argv + 1);
  if (strcmp(cmd, "inspect") == 0) return wk_cmd_inspect(argc - 1, argv + 1);
  if (strcmp(cmd, "weights") == 0) return wk_cmd_weights(argc - 1, argv + 1);
  if (strcmp(cmd, "top") == 0) return wk_cmd_top(argc - 1, argv + 1);
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("wick %s (libtorch %s)\n", WK_VERSION, wk_torch_version());
    return 0;
  }
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  fprintf(stderr, "wick: unknown command '%s'\n\n", cmd);
  usage(stderr);
  return 2;
}
