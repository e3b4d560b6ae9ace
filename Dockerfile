# The worker image for docker-compose.yml: the project installed exactly as .ci/setup does it.
FROM python:3.11-slim
WORKDIR /app
COPY . .
RUN PYTHON=python bash .ci/setup
ENV PATH=/app/.venv/bin:$PATH
