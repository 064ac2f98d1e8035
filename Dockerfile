# Stepwise container image, built from the wheel: the image holds what `pip install` gives, not
# the source tree. Settings come from IDP_* variables (see idp/config/example.env).
# Checked statically by tests/packaging/test_dockerfile.py (no Docker engine runs the tests).

# Build stage: makes the wheel, and nothing else leaves it. The build context is only what the
# wheel is built from (.dockerignore).
FROM python:3.11-slim AS build
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# Runtime stage: the wheel and its dependencies from PyPI, run by a user that owns nothing but
# its instance directory (SQLite and the development keys when no database or keys are set).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir /tmp/wheels/*.whl && rm -rf /tmp/wheels \
    && groupadd --system --gid 10001 stepwise \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/stepwise stepwise \
    && install -d -o stepwise -g stepwise /var/lib/stepwise /var/lib/stepwise/instance
# A numeric user, so that orchestrators that refuse root (Kubernetes' runAsNonRoot) can tell.
USER 10001:10001
WORKDIR /var/lib/stepwise
ENV IDP_INSTANCE_PATH=/var/lib/stepwise/instance
EXPOSE 8000
# Ready means the database and Redis answer (/readyz); the proxy checks the same URL.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2).status != 200)"]
# Every node runs `idp init` at start: an advisory lock lets one upgrade while the others wait.
CMD ["sh", "-c", "idp init && exec idp serve --host 0.0.0.0 --port 8000 --workers ${IDP_WORKERS:-2}"]
