# Stepwise container image. Settings come from IDP_* variables (see idp/config/example.env).
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir --config-settings editable_mode=compat -e . \
    && useradd --system --home /app stepwise && mkdir -p /app/instance && chown stepwise /app/instance
USER stepwise
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz').status != 200)"
CMD ["sh", "-c", "idp init && exec idp serve --host 0.0.0.0 --port 8000 --workers ${IDP_WORKERS:-2}"]
