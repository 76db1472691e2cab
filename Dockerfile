# The omnistock app for docker-compose.yml: it talks to the Valkey and Postgres services named by
# OMNISTOCK_REDIS_URL / OMNISTOCK_DATABASE_URL (the embedded servers are not used in a container).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --system --no-create-home omnistock
USER omnistock

EXPOSE 8000
CMD ["omnistock", "serve", "--host", "0.0.0.0", "--port", "8000"]
