"""trendio: TikTok Shop affiliate campaigns from YAML files, under the platform's rules."""

__version__ = "0.1.0"
