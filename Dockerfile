# wick in a container: Debian 12, the same install script as a developer machine
# (scripts/install-deps.sh --serve: Debian's C libraries, and a Python 3.11 venv with the
# pinned torch of requirements/serve.txt, here in /opt/wick/venv), a RelWithDebInfo build
# against that torch, and a non-root user.
#
#   docker build -t wick:0.1.0 .
#   docker run --rm -p 8080-8082:8080-8082 -v "$PWD/model_store:/models:ro" wick:0.1.0
#
# The APIs listen on 0.0.0.0 inside the container, so token authorization is on (keys in
# /home/wick/key_file.json; `docker exec <id> cat /home/wick/key_file.json`); add
# --disable-token-auth to the arguments when something in front of wick does the auth.
# docs/deploy.md says what was and was not tested.
FROM debian:bookworm

# Debian 12's python3 is 3.11, which the pinned torch wheel needs.
COPY scripts/install-deps.sh /tmp/wick/scripts/install-deps.sh
COPY requirements /tmp/wick/requirements
RUN WICK_VENV=/opt/wick/venv bash /tmp/wick/scripts/install-deps.sh --serve \
 && rm -rf /var/lib/apt/lists/* /tmp/wick /root/.cache/pip

# Warnings stay errors in CI (WK_WERROR); an image build should not fail on one.
COPY . /src/wick
RUN cmake -S /src/wick -B /src/wick/build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWK_WERROR=OFF \
          -DWK_PYTHON=/opt/wick/venv/bin/python \
 && cmake --build /src/wick/build -j "$(nproc)" --target wick \
 && install -m 0755 /src/wick/build/wick /usr/local/bin/wick \
 && mkdir -p /usr/local/lib/wick \
 && cp -r /src/wick/python /usr/local/lib/wick/python \
 && rm -rf /src/wick \
 && useradd --create-home --home-dir /home/wick --shell /usr/sbin/nologin --uid 10001 wick \
 && mkdir -p /models && chown wick:wick /models

# The Python worker runtime (the build bakes in the source path, which is gone).
ENV WICK_PYTHON_PATH=/usr/local/lib/wick/python \
    OPENBLAS_NUM_THREADS=1

USER wick
WORKDIR /home/wick
VOLUME ["/models"]
EXPOSE 8080 8081 8082

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/ping || exit 1

ENTRYPOINT ["wick", "serve"]
CMD ["--model-store", "/models", "--models", "all", \
     "--inference_address", "http://0.0.0.0:8080", \
     "--management_address", "http://0.0.0.0:8081", \
     "--metrics_address", "http://0.0.0.0:8082"]
