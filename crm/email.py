"""Business vs free-mail address: only the domain is looked at, the address is never kept."""

from __future__ import annotations

FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.de",
        "yahoo.fr",
        "yahoo.co.uk",
        "hotmail.com",
        "hotmail.de",
        "hotmail.fr",
        "outlook.com",
        "outlook.de",
        "live.com",
        "msn.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "gmx.de",
        "gmx.net",
        "gmx.at",
        "gmx.ch",
        "web.de",
        "t-online.de",
        "freenet.de",
        "mail.com",
        "mail.ru",
        "yandex.ru",
        "yandex.com",
        "proton.me",
        "protonmail.com",
        "zoho.com",
        "libero.it",
        "orange.fr",
        "free.fr",
        "laposte.net",
        "wanadoo.fr",
        "bluewin.ch",
        "qq.com",
        "163.com",
        "126.com",
        "rediffmail.com",
        "uol.com.br",
        "bol.com.br",
        "terra.com.br",
    }
)


def email_domain_kind(email: str | None) -> str | None:
    """'free' for a free-mail provider, 'business' otherwise, None when unknown."""
    if not email or "@" not in email:
        return None
    domain = email.rsplit("@", 1)[1].strip().lower()
    if not domain:
        return None
    return "free" if domain in FREE_MAIL_DOMAINS else "business"
