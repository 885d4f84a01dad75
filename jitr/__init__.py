"""jitr: Just-In-Time Registration of IoT devices onto AWS IoT Core."""

__version__ = "0.1.0"
