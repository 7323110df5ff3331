import os

os.environ.setdefault("KLCONF_CACHE_DIR", "off")  # klconf's own tests never read a stale oracle cache
