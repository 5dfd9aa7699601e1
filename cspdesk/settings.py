"""cspdesk settings, all from the environment.

DATABASE_URL       default sqlite:///<project>/var/cspdesk.sqlite3 (WAL mode)
CSPDESK_ENV        development (default) | production
CSPDESK_DEBUG      1/0, default 1 in development and 0 in production
SECRET_KEY         required in production; in development read from (or generated into) var/secret_key
ALLOWED_HOSTS      comma-separated, default "127.0.0.1,localhost"
CSPDESK_VAR_DIR    where files live (default <project>/var)
EMAIL_URL-ish      EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, EMAIL_USE_TLS
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CSPDESK_VAR_DIR", BASE_DIR / "var")).resolve()

CSPDESK_ENV = os.environ.get("CSPDESK_ENV", "development")
if CSPDESK_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"CSPDESK_ENV must be 'development' or 'production', not {CSPDESK_ENV!r}")
PRODUCTION = CSPDESK_ENV == "production"


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = _flag("CSPDESK_DEBUG", not PRODUCTION)


def weak_secret(key: str) -> bool:
    """Django's own rule for a weak key (check security.W009): short, few distinct characters, or insecure."""
    return len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure-")


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY", "")
    if key or PRODUCTION:
        return key
    path = VAR_DIR / "secret_key"
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(64)
    path.write_text(key)
    path.chmod(0o600)
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()]

if PRODUCTION:
    problems = []
    if DEBUG:
        problems.append("DEBUG is on (unset CSPDESK_DEBUG)")
    if not SECRET_KEY:
        problems.append("SECRET_KEY is missing")
    elif weak_secret(SECRET_KEY):
        problems.append("SECRET_KEY is weak (use at least 50 random characters)")
    if "*" in ALLOWED_HOSTS:
        problems.append("ALLOWED_HOSTS must name the hosts, not '*'")
    if problems:
        raise ImproperlyConfigured("cspdesk refuses to start in production: " + "; ".join(problems))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    "axes",  # security: login throttling
    "cspdesk.core",
    "cspdesk.audit",
    "cspdesk.tenancy",
    "cspdesk.partnercenter",
    "cspdesk.partnercenter.recon",
    "cspdesk.catalog",
    "cspdesk.billing",
    "cspdesk.payments",
    "cspdesk.support",
    "cspdesk.collections",
    "cspdesk.console",
    "cspdesk.portal",
    "cspdesk.demo",
    "cspdesk.ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # security: Content-Security-Policy
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "cspdesk.core.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # security: login lockout responses (last)
]

ROOT_URLCONF = "cspdesk.urls"
WSGI_APPLICATION = "cspdesk.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

_default_db = f"sqlite:///{VAR_DIR / 'cspdesk.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", _default_db), conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers work while a writer commits; IMMEDIATE takes the write lock up front
        # so two writers queue (busy_timeout) instead of failing with "database is locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["TEST"] = (
        {"NAME": os.environ.get("CSPDESK_TEST_SQLITE", "")} if os.environ.get("CSPDESK_TEST_SQLITE") else {}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [
    ("en", "English"),
    ("it", "Italiano"),
    ("sv", "Svenska"),
    ("pt-pt", "Português (Portugal)"),
    ("hu", "Magyar"),
]
LOCALE_PATHS = [BASE_DIR / "cspdesk" / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "files"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"  # customer users land on the portal, staff on the console
LOGOUT_REDIRECT_URL = "login"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = _flag("CSPDESK_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("CSPDESK_HSTS_SECONDS", "31536000"))
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# ---- security (begin): sessions, CSRF, login throttling, Content-Security-Policy, API token throttling ----
SESSION_COOKIE_AGE = int(os.environ.get("CSPDESK_SESSION_SECONDS", str(12 * 3600)))  # a working day, not 2 weeks
CSRF_COOKIE_HTTPONLY = True  # forms carry the token; no script needs the cookie
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _flag("CSPDESK_HSTS_SUBDOMAINS", False)

AUTHENTICATION_BACKENDS = [
    "cspdesk.core.security.LoginThrottleBackend",  # refuses a locked-out (username, IP) before the password
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("CSPDESK_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("CSPDESK_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "cspdesk.core.security.lockout_response"
AXES_CLIENT_IP_CALLABLE = "cspdesk.core.throttle.client_ip"
AXES_VERBOSE = False
AXES_SENSITIVE_PARAMETERS = ["password", "token", "secret"]

# Failed API tokens do not lock an account (anyone could lock anyone out); they are logged and, past the
# limit, the client address gets 429 for the rest of the window.
CSPDESK_TOKEN_FAILURE_LIMIT = int(os.environ.get("CSPDESK_TOKEN_FAILURE_LIMIT", "20"))
CSPDESK_TOKEN_FAILURE_WINDOW = int(os.environ.get("CSPDESK_TOKEN_FAILURE_WINDOW_SECONDS", "600"))

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# ---- security (end) ----

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = VAR_DIR / "mail"
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _flag("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "billing@cspdesk.localhost")

# The addresses customers are sent to from e-mails and documents (the portal, the published collections policy).
CSPDESK_PUBLIC_URL = os.environ.get("CSPDESK_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
CSPDESK_PORTAL_URL = os.environ.get("CSPDESK_PORTAL_URL", CSPDESK_PUBLIC_URL).rstrip("/")

# ---- background work (begin): docs/deploy.md ----
# CSPDESK_TASKS_BACKEND  db (default: the database queue, `cspdesk worker` runs db_worker) | rq (Redis through
#                        RQ, `cspdesk worker` runs rqworker; for N worker machines) | immediate (in the caller) |
#                        a backend's dotted path
# REDIS_URL              the RQ backend's Redis, default redis://127.0.0.1:6379/0
# CSPDESK_TASKS_QUEUES   the queues, comma-separated (default "default")
_TASK_BACKENDS = {
    "db": "django_tasks_db.DatabaseBackend",
    "rq": "django_tasks_rq.RQBackend",
    "immediate": "django_tasks.backends.immediate.ImmediateBackend",
}
_tasks_backend = os.environ.get("CSPDESK_TASKS_BACKEND", "db")
TASKS_QUEUES = [q.strip() for q in os.environ.get("CSPDESK_TASKS_QUEUES", "default").split(",") if q.strip()]
TASKS = {
    "default": {
        "BACKEND": _TASK_BACKENDS.get(_tasks_backend, _tasks_backend),
        "QUEUES": TASKS_QUEUES,
    }
}
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
if TASKS["default"]["BACKEND"] == _TASK_BACKENDS["rq"]:
    INSTALLED_APPS += ["django_rq", "django_tasks_rq"]
    RQ_QUEUES = {
        # a job runs at most this long (a billing part is seconds; a big import's part minutes)
        name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": int(os.environ.get("CSPDESK_RQ_JOB_TIMEOUT", "3600"))}
        for name in TASKS_QUEUES
    }
# A split run's part (core.fanout): a worker holds it this long before another may take it over, and a failed
# part is retried this many times, this many seconds apart (by `cspdesk scheduler`'s sweep).
CSPDESK_WORK_LEASE_SECONDS = int(os.environ.get("CSPDESK_WORK_LEASE_SECONDS", "600"))
CSPDESK_WORK_MAX_ATTEMPTS = int(os.environ.get("CSPDESK_WORK_MAX_ATTEMPTS", "5"))
CSPDESK_WORK_RETRY_SECONDS = int(os.environ.get("CSPDESK_WORK_RETRY_SECONDS", "30"))
CSPDESK_BILLING_BUYERS_PER_PART = int(os.environ.get("CSPDESK_BILLING_BUYERS_PER_PART", "50"))
CSPDESK_IMPORT_CUSTOMERS_PER_PART = int(os.environ.get("CSPDESK_IMPORT_CUSTOMERS_PER_PART", "100"))
# A finalized run's documents are stored (billing.archive) by the workers, this many invoices per part.
CSPDESK_ARCHIVE_INVOICES_PER_PART = int(os.environ.get("CSPDESK_ARCHIVE_INVOICES_PER_PART", "100"))
# E-mail goes out after the change it reports commits (core.outbox): a sender holds a mail this long before another
# may take it over, and a refused mail is tried this many times before it waits for `cspdesk outbox --retry-failed`.
CSPDESK_MAIL_CLAIM_SECONDS = int(os.environ.get("CSPDESK_MAIL_CLAIM_SECONDS", "600"))
CSPDESK_MAIL_MAX_ATTEMPTS = int(os.environ.get("CSPDESK_MAIL_MAX_ATTEMPTS", "5"))
# ---- background work (end) ----

# Partner Center: the client is pointed at the real service or the local emulator by configuration only.
PARTNER_CENTER = {
    "BASE_URL": os.environ.get("PARTNER_CENTER_BASE_URL", "https://api.partnercenter.microsoft.com"),
    "AUTHORITY": os.environ.get("PARTNER_CENTER_AUTHORITY", "https://login.microsoftonline.com"),
    "AUTHORITY_USGOV": os.environ.get("PARTNER_CENTER_AUTHORITY_USGOV", "https://login.microsoftonline.us"),
    "CLIENT_ID": os.environ.get("PARTNER_CENTER_CLIENT_ID", ""),
    "CLIENT_SECRET": os.environ.get("PARTNER_CENTER_CLIENT_SECRET", ""),
    "REFRESH_TOKEN": os.environ.get("PARTNER_CENTER_REFRESH_TOKEN", ""),
    # Microsoft Graph, for the billing reconciliation export (global cloud only); the emulator's is {url}/v1.0.
    "GRAPH_BASE_URL": os.environ.get("PARTNER_CENTER_GRAPH_BASE_URL", "https://graph.microsoft.com/v1.0"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "cspdesk.core.logsafe.RedactSecrets"}},  # security: secrets never logged
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("CSPDESK_LOG_LEVEL", "WARNING")},
}
