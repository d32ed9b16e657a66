# smpp on the official Airflow image: api-server, scheduler, dag-processor, triggerer and
# Celery workers all run this image (docker-compose.yaml). Build:
#   docker build -t smpp-airflow .                                   # CPU torch (smaller)
#   docker build -t smpp-airflow-gpu --build-arg TORCH_VARIANT=cuda .  # CUDA torch, GPU model workers
# praw.ini is never copied in (.dockerignore): compose mounts it as a read-only secret.
FROM apache/airflow:3.3.2-python3.11

# cpu: torch/torchvision from PyTorch's CPU wheel index (no ~4 GB of CUDA libraries);
# cuda: PyPI's default torch wheels, which bundle CUDA and also run on CPU.
ARG TORCH_VARIANT=cpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

ENV SMPP_HOME=/opt/airflow/smpp \
    SMPP_DATA_DIR=/opt/airflow/smpp-data \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TF_CPP_MIN_LOG_LEVEL=2

# the zstd CLI decompresses dumps in a child process beside the grep prefilter (~1.3x the cost of
# `zstd -dc | wc -l`; without it python zstandard decodes in-process and Python searches)
USER root
RUN apt-get update && apt-get install -y --no-install-recommends zstd grep \
    && rm -rf /var/lib/apt/lists/*
USER airflow
# requirements.txt holds the top-level pins (apache-airflow==3.3.2 among them, so pip never
# swaps the image's Airflow); requirements.lock constrains everything else to the tested set.
COPY --chown=airflow:0 requirements.txt requirements.lock /opt/airflow/smpp/
RUN set -eux; \
    case "$TORCH_VARIANT" in \
      cpu) extra="--extra-index-url $TORCH_CPU_INDEX" ;; \
      cuda) extra="" ;; \
      *) echo "TORCH_VARIANT must be cpu or cuda" >&2; exit 1 ;; \
    esac; \
    pip install --no-cache-dir $extra -r /opt/airflow/smpp/requirements.txt -c /opt/airflow/smpp/requirements.lock

# Visualized BGE ships only in flagembedding 1.2.x sdists (see the script for why and how)
COPY --chown=airflow:0 scripts/install_visualized_bge.py /opt/airflow/smpp/scripts/
COPY --chown=airflow:0 src/ /opt/airflow/smpp/src/
RUN python /opt/airflow/smpp/scripts/install_visualized_bge.py
# the package itself (deps are all installed above, from the same pins): `smpp` on PATH, no PYTHONPATH
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/smpp/
RUN pip install --no-cache-dir --no-deps /opt/airflow/smpp

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
# volume mount points owned by airflow, so fresh named volumes start writable
RUN mkdir -p /opt/airflow/smpp-data /opt/airflow/auth /home/airflow/.cache/huggingface /home/airflow/.config
