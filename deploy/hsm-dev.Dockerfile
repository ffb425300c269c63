# Development stand-in for a network HSM (deploy/compose.yaml): a SoftHSM
# token served over a socket by p11-kit's remoting, as a vendor's HSM
# serves its partitions over the network. Never for production keys.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 p11-kit p11-kit-modules \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 qsign \
 && useradd --system --uid 10001 --gid qsign qsign \
 && mkdir -p /var/lib/softhsm/tokens /run/p11 \
 && chown -R 10001:10001 /var/lib/softhsm /run/p11
COPY --chmod=0755 deploy/hsm-dev.sh /usr/local/bin/hsm-dev
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/hsm-dev"]
