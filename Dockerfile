FROM python:3.11-slim
WORKDIR /srv/loupe
COPY pyproject.toml README.md alembic.ini ./
COPY app app
COPY migrations migrations
COPY templates templates
COPY static static
RUN pip install --no-cache-dir -e ".[worker,postgres,s3]"
ENV LOUPE_DATA=/data
VOLUME /data
EXPOSE 8000
# Listening beyond loopback (inside the container) requires logins: create an admin first
# (docker compose run --rm app loupe user add NAME --role admin).
CMD ["loupe", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-worker"]
