# The operator image for people who build with Docker or Podman:
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" -t ghcr.io/bluegreen-operator/bluegreen-operator:0.1.0 .
# It produces the same layout as `make image` (image/build.py, which needs no Docker engine): Debian bookworm,
# Debian's python3 with a venv at /opt/bluegreen holding image/requirements.txt and the project (without the
# kubernetes client's unused asyncio copy), git, gpg and ssh-keygen, no setuid/setgid bits, the user nonroot
# (65532), the same env, volumes, ports, labels, entrypoint and cmd. The base differs in detail
# (debian:bookworm-slim here, mmdebstrap's essential variant there). No Docker engine exists on the project's
# machines, so this file is never built there: tests/unit/test_image_spec.py checks that it agrees with
# image/image.json, the builder's spec.
ARG DEBIAN=debian:bookworm-slim

FROM ${DEBIAN} AS venv
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY image/requirements.txt /src/image/requirements.txt
# pip runs from Debian's pip wheel (python3-venv): the venv itself holds no pip, as in `make image`.
RUN python3 -m venv --without-pip /opt/bluegreen \
 && pip="$(echo /usr/share/python-wheels/pip-*.whl)/pip" \
 && /opt/bluegreen/bin/python "$pip" install --no-cache-dir --no-deps --only-binary=:all: \
      -r /src/image/requirements.txt \
 && /opt/bluegreen/bin/python "$pip" check \
 && rm -r /opt/bluegreen/lib/python3.11/site-packages/kubernetes/aio
COPY pyproject.toml README.md /src/
COPY operator /src/operator
RUN /opt/bluegreen/bin/python "$(echo /usr/share/python-wheels/pip-*.whl)/pip" install --no-cache-dir --no-deps /src

FROM ${DEBIAN}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 git gpg openssh-client \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'nonroot:x:65532:' >> /etc/group \
 && echo 'nonroot:*:19000:0:99999:7:::' >> /etc/shadow \
 && install -d -o 65532 -g 65532 -m 0755 /home/nonroot /var/cache/bluegreen \
 && find / -xdev -type f -perm /6000 -exec chmod ug-s {} +
COPY --from=venv /opt/bluegreen /opt/bluegreen

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="bluegreen-operator" \
      org.opencontainers.image.description="GitOps controller that turns a git repository into zero-downtime blue/green releases on Kubernetes" \
      org.opencontainers.image.source="https://github.com/bluegreen-operator/bluegreen-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV PATH=/opt/bluegreen/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    BLUEGREEN_CACHE_DIR=/var/cache/bluegreen \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_DIR=/etc/ssl/certs \
    LANG=C.UTF-8
VOLUME ["/tmp", "/var/cache/bluegreen"]
EXPOSE 8000/tcp 8080/tcp 9443/tcp
WORKDIR /
USER 65532:65532
ENTRYPOINT ["/opt/bluegreen/bin/bluegreen"]
CMD ["run"]
