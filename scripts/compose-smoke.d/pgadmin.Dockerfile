# Stand-in for dpage/pgadmin4:9 (scripts/compose-smoke): pgAdmin 4 from its PyPI package, laid out
# as the official image is (/pgadmin4, /venv, /var/lib/pgadmin, user 5050, /entrypoint.sh), with
# an entrypoint honouring the variables docker-compose.yml sets.
FROM debian:bookworm-slim
COPY ca.crt /usr/local/share/compose-smoke-ca.crt
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv python3-dev \
      gcc libc6-dev libpq-dev libpq5 libkrb5-dev libkrb5-3 libgssapi-krb5-2 postgresql-client \
 && python3 -m venv /venv \
 && PIP_CERT=/usr/local/share/compose-smoke-ca.crt /venv/bin/pip install --no-cache-dir \
      'pgadmin4>=9,<10' 'gunicorn>=23,<24' \
 && site=$(/venv/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
 && mv "$site/pgadmin4" /pgadmin4 \
 && ln -s /pgadmin4 "$site/pgadmin4" \
 && apt-get purge -y --auto-remove gcc libc6-dev libpq-dev libkrb5-dev python3-dev \
 && rm -rf /var/lib/apt/lists/* \
 && useradd -r -u 5050 -g root -s /usr/sbin/nologin pgadmin \
 && mkdir -p /run/pgadmin /var/lib/pgadmin \
 && chown pgadmin:root /run/pgadmin /var/lib/pgadmin \
 && chown pgadmin:root /pgadmin4/config_distro.py
# The package's own config_distro.py holds packagers' defaults; the entrypoint fills it from the
# PGADMIN_CONFIG_* variables when it is empty, as the official image's does with its empty file.
RUN : > /pgadmin4/config_distro.py
COPY pgadmin-run.py /pgadmin4/run_pgadmin.py
COPY pgadmin-entrypoint.sh /entrypoint.sh
WORKDIR /pgadmin4
ENV PYTHONPATH=/pgadmin4
USER 5050
VOLUME /var/lib/pgadmin
EXPOSE 80
ENTRYPOINT ["/entrypoint.sh"]
