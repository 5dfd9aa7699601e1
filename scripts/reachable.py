"""Exit 0 when a server answers: ``reachable.py postgres URL`` or ``reachable.py redis URL``."""

import sys


def main() -> int:
    kind, url = sys.argv[1], sys.argv[2]
    try:
        if kind == "postgres":
            import psycopg

            with psycopg.connect(url.replace("postgres://", "postgresql://", 1), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        elif kind == "redis":
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        else:
            return 2
    except Exception as exc:
        print(f"{kind} unreachable at {url}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
