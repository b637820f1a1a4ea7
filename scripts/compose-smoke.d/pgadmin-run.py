# The WSGI module gunicorn serves, as in the official image: the server-mode data directory
# (/var/lib/pgadmin) unless config_distro.py says otherwise.
import builtins

builtins.SERVER_MODE = True

from pgAdmin4 import app  # noqa: E402,F401
