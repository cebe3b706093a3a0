/* Every size that a client, an archive or a config file controls is checked against
 * a named limit here. Runtime-configurable limits (max_request_size, ...) take their
 * defaults from here too. */
#ifndef WK_CORE_LIMITS_H
#define WK_CORE_LIMITS_H

/* HTTP */
#define WK_DEFAULT_MAX_REQUEST_SIZE (6553500L)  /* TorchServe's default, bytes */
#define WK_DEFAULT_MAX_RESPONSE_SIZE (6553500L) /* TorchServe's default, bytes */
#define WK_MAX_URL_PATH 4096

/* tensors */
#define WK_MAX_DIMS 8                        /* rank of a tensor decoded from JSON */
#define WK_MAX_TENSOR_ELEMS (64L * 1024 * 1024) /* elements in one decoded tensor */
#define WK_MAX_JSON_DEPTH 64                 /* nesting depth of any JSON we scan */
#define WK_MAX_NAMED_INPUTS 16               /* named forward() arguments */

/* archives */
#define WK_MAX_ZIP_ENTRIES 65536
#define WK_MAX_ZIP_NAME 1024
#define WK_MAX_ENTRY_SIZE (8LL * 1024 * 1024 * 1024)     /* one uncompressed entry */
#define WK_MAX_ARCHIVE_UNPACKED (16LL * 1024 * 1024 * 1024) /* all entries together */
/* What a server lets archives unpack to ([11] part 6): one archive (with its extraFiles
 * archives), and every model's unpacked folder together (max_unpacked_archive_size,
 * max_unpacked_total_size; never more than the disk has free, less this reserve). */
#define WK_DEFAULT_MAX_UNPACKED_ARCHIVE (8LL * 1024 * 1024 * 1024)
#define WK_DEFAULT_MAX_UNPACKED_TOTAL (32LL * 1024 * 1024 * 1024)
#define WK_UNPACK_DISK_RESERVE (256LL * 1024 * 1024)
#define WK_MAX_DEFLATE_RATIO 1100 /* uncompressed/compressed; deflate tops out near 1032 */
#define WK_MAX_MANIFEST_SIZE (1024 * 1024)
#define WK_MAX_CONFIG_FILE_SIZE (4 * 1024 * 1024) /* model-config.yaml, config.properties */
#define WK_MAX_LIBERATOR_FILE_SIZE (4 * 1024 * 1024) /* a liberated model .py, train_info.json */

/* weights: PyTorch .pt checkpoints (weights/pickle.c, weights/pt.c). Tensor data is not in
 * the pickle: a 7B-parameter model's data.pkl is ~100 KB. */
#define WK_MAX_PICKLE_SIZE (256L * 1024 * 1024) /* bytes of one data.pkl */
#define WK_MAX_PICKLE_DEPTH 256                 /* open MARKs, and nesting of the value tree */
#define WK_MAX_PICKLE_STACK (1 << 20)           /* values on the pickle machine's stack */
#define WK_MAX_PICKLE_MEMO (1 << 22)            /* highest memo index (BINPUT/LONG_BINPUT) */
#define WK_MAX_PICKLE_VALUES (1L << 23)         /* values one pickle may create (~150 B each) */
#define WK_MAX_PICKLE_NAME 512                  /* module or name of one GLOBAL */
#define WK_MAX_PT_TENSORS (1 << 20)             /* tensors in one checkpoint */
#define WK_MAX_PT_DIMS 16                       /* rank of one checkpoint tensor */
#define WK_MAX_PT_NAME 4096                     /* dotted path of one tensor or entry */
/* How much larger than its storage a tensor view may become (stride 0 repeats elements:
 * a 650-byte .pt could otherwise expand to gigabytes when copied out, [11] part 9). */
#define WK_MAX_PT_EXPANSION (256LL * 1024 * 1024)
/* Partial state transfer: the isomorphism/embedding searches fill a table of (nodes of
 * one key tree) x (nodes of the other) cells, 5-10 bytes each. ResNet-50 into Faster
 * R-CNN takes ~0.1M (isomorphism) or ~1M (embedding) cells. */
#ifndef WK_MAX_XFER_CELLS /* the fuzz build sets a smaller one (CMakeLists.txt, WK_FUZZ) */
#define WK_MAX_XFER_CELLS (1L << 25)
#endif

/* explanations */
#define WK_DEFAULT_IG_STEPS 50
#define WK_MAX_IG_STEPS 1024
#define WK_STR_(x) #x
#define WK_STR(x) WK_STR_(x)

/* serving */
#define WK_DEFAULT_JOB_QUEUE_SIZE 100
#define WK_DEFAULT_RESPONSE_TIMEOUT_S 120
#define WK_DEFAULT_STARTUP_TIMEOUT_S 120
#define WK_DEFAULT_DRAIN_TIMEOUT_S 30 /* SIGTERM: how long queued requests may still run */
#define WK_MAX_WORKERS 256
/* Seconds a connection may stay idle before it is closed (nginx keeps 75). */
#define WK_DEFAULT_IDLE_TIMEOUT_S 60
/* Seconds a client may take to send one request, header and body together. */
#define WK_DEFAULT_REQUEST_TIMEOUT_S 60
/* Query arguments in one request line. libmicrohttpd 0.9.75 runs out of its connection
 * memory near 480 and then answers nothing ([11] part 10): refused before that. */
#define WK_MAX_QUERY_ARGS 256
/* Open files kept back from the connection limit (models, Python workers, logs). */
#define WK_FD_RESERVE 512
/* The largest batchSize / batch_size: each worker holds a batch of that many requests, and
 * batch_size=2147483647 made every worker ask for 16 GiB ([11] part 5). */
#define WK_MAX_BATCH_SIZE 1024
#define WK_MAX_MODELS 1024
/* An idle native worker polls its queue this long before sleeping on the condition
 * variable: waking a sleeping thread costs 40+ us on these VMs (bench/RESULTS.md). */
#define WK_DEFAULT_WORKER_SPIN_US 200
/* A model with more workers than this stuck in a timed-out forward reports unhealthy. */
#define WK_MAX_ABANDONED_WORKERS 2
/* Worker deaths in a row, with no successful answer between them, that mark a model failed
 * rather than restarting its workers forever ([13] part 3); and the longest rest between a
 * worker's restarts. */
#define WK_CRASH_LOOP_MAX 5
#define WK_MAX_RESTART_BACKOFF_MS 30000
/* Request headers forwarded to a Python handler (context.get_request_header); more are dropped. */
#define WK_MAX_FORWARDED_HEADERS 64
/* Instances in one KServe v1 request that runs as one job per instance. */
#define WK_MAX_V1_INSTANCES 4096

/* Python handlers */
#define WK_MAX_EXTRA_FILES 64   /* system.extraFiles archives per model */
#define WK_PIP_TIMEOUT_S 600    /* per-model `pip install -r` at load */
#define WK_PIP_OUTPUT_TAIL 3000 /* bytes of pip's output kept for the error */

#endif
