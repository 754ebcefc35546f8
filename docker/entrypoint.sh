#!/bin/sh
# Entrypoint of the production image.
#
#   web [daphne options]     apply migrations, then serve HTTP and websockets on 0.0.0.0:8000 (Daphne)
#   worker [celery options]  run a Celery worker (CELERY_CONCURRENCY processes, default 2)
#   beat [celery options]    run celery beat, which sends the periodic tasks (the retention run); one only
#   anything else            run it as given (a shell, `python manage.py createsuperuser`, `daphne ...`)
#   (no command)             the same as `web`
#
# Each server is started with `exec`, so it replaces this shell and receives the container's stop signal
# itself: Daphne closes its connections, Celery finishes the tasks it is running (warm shutdown).
set -eu

if [ "$#" -eq 0 ]; then
    set -- web
fi

case "$1" in
    web)
        shift
        # Migrating on start keeps schema and code in step without a separate deploy step. Django takes
        # no lock for it: when several web containers start at once, run `migrate` once as its own step
        # (this image with the command `python manage.py migrate --noinput`) before starting them.
        echo "[entrypoint] applying migrations" >&2
        python /app/manage.py migrate --noinput
        echo "[entrypoint] starting Daphne on 0.0.0.0:8000" >&2
        # No --proxy-headers: Daphne would trust the left-most X-Forwarded-For entry, which clients write;
        # the app takes the client address from TRUSTED_PROXY_HOPS instead (apps/core/clientip.py).
        exec daphne -b 0.0.0.0 -p 8000 "$@" helpdesk.asgi:application
        ;;
    worker)
        shift
        concurrency="${CELERY_CONCURRENCY:-2}"
        case "$concurrency" in
            '' | *[!0-9]* | 0)
                echo "[entrypoint] CELERY_CONCURRENCY=$concurrency is not a positive whole number" >&2
                exit 2
                ;;
        esac
        echo "[entrypoint] starting the Celery worker with $concurrency processes" >&2
        exec celery -A helpdesk worker \
            --loglevel "${LOG_LEVEL:-INFO}" \
            --concurrency "$concurrency" \
            --hostname "helpdesk@%h" \
            "$@"
        ;;
    beat)
        shift
        # The schedule file only remembers when each task last ran; losing it with the container costs
        # at most one early run. One beat per deployment: two would send every periodic task twice.
        echo "[entrypoint] starting celery beat" >&2
        exec celery -A helpdesk beat \
            --loglevel "${LOG_LEVEL:-INFO}" \
            --schedule "${CELERY_BEAT_SCHEDULE_FILE:-/home/helpdesk/celerybeat-schedule}" \
            "$@"
        ;;
    *)
        exec "$@"
        ;;
esac
