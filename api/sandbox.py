"""The simulation sandbox: the bot as a Telegram-like web page, for training, without a Telegram token.

Only the transport is simulated. Updates built from a person's clicks and typing go through the real
dispatcher (``runtime.dispatcher.feed_update``), the real handlers and core, on the runtime's database.
What the bot sends leaves through :class:`bot.local_session.LocalSession`, whose sink is
:meth:`ChatStore.sink`: the Bot API calls become chat state (messages, keyboards, menus, pop-ups) that
the page reads by long polling. Nothing in ``core/`` or ``bot/`` knows about the sandbox.

Safety rules (see ``docs/sandbox.md``):

* :func:`decide` turns the settings into on or off. Without a token it is on unless ``SANDBOX_ENABLED``
  is false, but never on a PostgreSQL database whose name does not contain ``sandbox``. With a token it
  is off unless ``SANDBOX_ENABLED=true`` *and* the database is a separate training database (its file
  or database name contains ``sandbox``). When off, every sandbox route answers 404.
* Requests are served to loopback clients only (and ``Host`` must be a loopback name), unless
  ``SANDBOX_ALLOW_REMOTE=true`` is in the environment. Writes need the ``X-Sandbox`` header, which a
  cross-site form cannot send.
* With a token, a routing session keeps every call about a sandbox chat in process, so that nothing
  a persona does ever reaches Telegram; everything else still goes to Telegram.
"""

from __future__ import annotations

import asyncio
import html
import ipaddress
import itertools
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import PurePath
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteMessage,
    DeleteMessages,
    DeleteMyCommands,
    EditMessageCaption,
    EditMessageReplyMarkup,
    EditMessageText,
    SendDocument,
    SendMessage,
    SetMyCommands,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import (
    BotCommandScopeChat,
    CallbackQuery,
    Chat,
    Contact,
    Document,
    ForceReply,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    MessageEntity,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
    User,
)
from sqlalchemy.engine import make_url

from bot.i18n import pick_locale, translator
from bot.local_session import BOT_USER, LocalSession
from core.config import Settings
from core.db.seed import DEMO_ACCOUNTS, DemoAccount

log = logging.getLogger(__name__)

#: A database is a separate training database when its name contains this word.
SANDBOX_DB_MARK = "sandbox"
#: Telegram ids of new people made up by the sandbox start here (demo accounts are 91xxxx).
NEW_PERSON_MIN_ID = 990_000
NEW_PERSON_SPAN = 9_000_000
#: Environment variable that lets non-loopback clients use the sandbox (a trainer's laptop on a LAN).
ALLOW_REMOTE_ENV = "SANDBOX_ALLOW_REMOTE"
#: Header every write must carry: a cross-site form or ``fetch`` without CORS cannot set it.
WRITE_HEADER = "x-sandbox"
LONG_POLL_MAX_SECONDS = 25.0
UPDATE_ID_BASE = 10**12

_TRUE = {"1", "true", "yes", "on"}
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
_NEW_NAMES = ("Nurul", "Yoga", "Putri", "Agus", "Wulan", "Bagus", "Intan", "Hendra", "Maya", "Rudi")


# ==============================================================================================
# 1. On or off: the safety rule
# ==============================================================================================


@dataclass(frozen=True, slots=True)
class Decision:
    enabled: bool
    reason: str


def database_name(url: str) -> str:
    """The file name (SQLite) or database name (PostgreSQL) of a database URL, for the training-database rule."""
    parsed = make_url(url)
    name = parsed.database or ""
    if parsed.get_backend_name() == "sqlite":
        return PurePath(name).name if name else ":memory:"
    return name


def is_training_database(url: str) -> bool:
    return SANDBOX_DB_MARK in database_name(url).lower()


def decide(settings: Settings) -> Decision:
    """Whether the sandbox may run with these settings. Pure: the tests and ``frontdesk serve`` use it too."""
    if settings.sandbox_enabled is False:
        return Decision(False, "SANDBOX_ENABLED=false")
    url = settings.database_url
    training = is_training_database(url)
    if settings.telegram_bot_token is not None:
        if settings.sandbox_enabled is not True:
            return Decision(False, "a Telegram token is set (the sandbox is for instances without one)")
        if not training:
            return Decision(
                False,
                f"SANDBOX_ENABLED=true with a Telegram token needs a separate training database "
                f"(its name must contain {SANDBOX_DB_MARK!r}); refusing {database_name(url)!r}",
            )
        return Decision(True, "SANDBOX_ENABLED=true on a training database")
    if make_url(url).get_backend_name() != "sqlite" and not training:
        return Decision(
            False,
            f"no token, but {database_name(url)!r} is a PostgreSQL database not named as a training "
            f"database (name must contain {SANDBOX_DB_MARK!r}): it may be production",
        )
    return Decision(True, "no Telegram token: offline mode")


def remote_allowed(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(ALLOW_REMOTE_ENV, "").strip().lower() in _TRUE


def sandbox_note(settings: Settings, host: str, port: int) -> str:
    """A suffix for the line ``frontdesk serve`` prints: where the sandbox is, or nothing."""
    if not decide(settings).enabled:
        return ""
    shown = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104 - only printed
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"\nSIMULASI sandbox (training copy, not for real data): http://{shown}:{port}/sandbox"


def host_name(host_header: str) -> str:
    """The name in a ``Host`` header, without the port (``[::1]:8000`` → ``::1``)."""
    value = host_header.strip()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value[1:]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


# ==============================================================================================
# 2. Telegram HTML: render only what Telegram renders
# ==============================================================================================

_TAGS = {
    "b": "b",
    "strong": "b",
    "i": "i",
    "em": "i",
    "u": "u",
    "ins": "u",
    "s": "s",
    "strike": "s",
    "del": "s",
    "code": "code",
    "pre": "pre",
    "a": "a",
}
_ENTITY_TYPES = {
    "b": "bold",
    "i": "italic",
    "u": "underline",
    "s": "strikethrough",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
}
_SAFE_SCHEMES = ("http://", "https://", "tg://", "mailto:")


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _TelegramHtml(HTMLParser):
    """Keeps b, i, u, s, code, pre and a (with a safe href); everything else becomes visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.plain: list[str] = []
        self.units = 0  # in UTF-16 code units, as Telegram counts entity offsets
        self.stack: list[tuple[str, int, str | None]] = []
        self.entities: list[MessageEntity] = []

    def _text(self, text: str) -> None:
        self.out.append(html.escape(text, quote=False))
        self.plain.append(text)
        self.units += _utf16_len(text)

    def handle_data(self, data: str) -> None:
        self._text(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        norm = _TAGS.get(tag)
        if norm is None:
            self._text(self.get_starttag_text() or f"<{tag}>")
            return
        url: str | None = None
        if norm == "a":
            href = (dict(attrs).get("href") or "").strip()
            url = href if href.lower().startswith(_SAFE_SCHEMES) else None
            if url is not None:
                self.out.append(f'<a href="{html.escape(url, quote=True)}" target="_blank" rel="noopener noreferrer">')
        else:
            self.out.append(f"<{norm}>")
        self.stack.append((norm, self.units, url))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._text(self.get_starttag_text() or f"<{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        norm = _TAGS.get(tag)
        if norm is None or all(item[0] != norm for item in self.stack):
            self._text(f"</{tag}>")
            return
        while self.stack:
            top = self._close()
            if top == norm:
                break

    def _close(self) -> str:
        norm, start, url = self.stack.pop()
        if norm != "a" or url is not None:
            self.out.append(f"</{norm}>")
        length = self.units - start
        if length > 0 and (norm != "a" or url is not None):
            self.entities.append(MessageEntity(type=_ENTITY_TYPES[norm], offset=start, length=length, url=url))
        return norm

    def handle_comment(self, data: str) -> None:
        self._text(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self._text(f"<!{decl}>")

    def unknown_decl(self, data: str) -> None:
        self._text(f"<![{data}]>")

    def handle_pi(self, data: str) -> None:
        self._text(f"<?{data}>")

    def finish(self) -> tuple[str, str, list[MessageEntity]]:
        self.close()
        while self.stack:
            self._close()
        self.entities.sort(key=lambda e: (e.offset, -e.length))
        return "".join(self.out), "".join(self.plain), self.entities


def telegram_html(text: str | None) -> tuple[str, str, list[MessageEntity]]:
    """Bot text (HTML parse mode) → (safe HTML for the page, plain text, entities) as Telegram would show it."""
    parser = _TelegramHtml()
    parser.feed(text or "")
    return parser.finish()


# ==============================================================================================
# 3. The chat store: what each chat shows, built from the Bot API calls
# ==============================================================================================


@dataclass
class Persona:
    telegram_id: int
    first_name: str
    language_code: str = "id"
    label_key: str | None = None

    @property
    def phone(self) -> str:
        # The demo accounts' phone numbers (DemoAccount.phone) follow the same pattern.
        return f"+62812{self.telegram_id:07d}"

    @property
    def user(self) -> User:
        return User(id=self.telegram_id, is_bot=False, first_name=self.first_name, language_code=self.language_code)

    @property
    def chat(self) -> Chat:
        return Chat(id=self.telegram_id, type="private", first_name=self.first_name)

    def as_json(self) -> dict[str, Any]:
        return {
            "telegram_id": self.telegram_id,
            "name": self.first_name,
            "language_code": self.language_code,
            "phone": self.phone,
            "label_key": self.label_key,
        }


@dataclass
class ChatMessage:
    id: int
    pos: int  # order in the chat
    rev: int  # chat version of the last change
    sender: str  # bot | user | system
    date: datetime
    text: str = ""  # plain text, as a Telegram client shows it
    html: str = ""  # safe HTML for the page
    source: str = ""  # the text as the bot sent it (HTML parse mode)
    entities: list[MessageEntity] = field(default_factory=list)
    keyboard: InlineKeyboardMarkup | None = None
    edited: bool = False
    deleted: bool = False
    document: dict[str, Any] | None = None
    contact: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "pos": self.pos,
            "rev": self.rev,
            "from": self.sender,
            "date": self.date.isoformat(),
            "text": self.text,
            "html": self.html,
            "edited": self.edited,
            "deleted": self.deleted,
            "keyboard": _inline_json(self.keyboard),
            "document": self.document,
            "contact": self.contact,
        }
        return out

    def as_message(self, chat: Chat, user: User | None) -> Message:
        """The message as Telegram would put it into an update (plain text plus entities)."""
        fields: dict[str, Any] = {
            "message_id": self.id,
            "date": self.date,
            "chat": chat,
            "from_user": BOT_USER if self.sender == "bot" else user,
            "reply_markup": self.keyboard,
        }
        if self.edited:
            fields["edit_date"] = int(self.date.timestamp())
        if self.document is not None:
            fields["document"] = Document(
                file_id=self.document["file_id"], file_unique_id=self.document["id"], file_name=self.document["name"]
            )
            if self.text:
                fields["caption"] = self.text
                fields["caption_entities"] = self.entities or None
        else:
            fields["text"] = self.text
            fields["entities"] = self.entities or None
        return Message(**fields)


def _inline_json(markup: InlineKeyboardMarkup | None) -> list[list[dict[str, Any]]] | None:
    if markup is None:
        return None
    rows: list[list[dict[str, Any]]] = []
    for row in markup.inline_keyboard:
        out_row: list[dict[str, Any]] = []
        for button in row:
            if button.callback_data is not None:
                out_row.append({"text": button.text, "kind": "callback", "data": button.callback_data})
            elif button.url:
                out_row.append({"text": button.text, "kind": "url", "url": button.url})
            else:
                out_row.append({"text": button.text, "kind": "other"})
        rows.append(out_row)
    return rows


def _reply_keyboard_json(markup: ReplyKeyboardMarkup) -> dict[str, Any]:
    return {
        "rows": [
            [{"text": b.text, "request_contact": bool(b.request_contact)} for b in row] for row in markup.keyboard
        ],
        "one_time": bool(markup.one_time_keyboard),
        "placeholder": markup.input_field_placeholder,
    }


@dataclass
class Alert:
    seq: int
    text: str
    show_alert: bool


@dataclass
class ChatState:
    id: int
    persona: Persona
    version: int = 0
    messages: dict[int, ChatMessage] = field(default_factory=dict)
    reply_keyboard: dict[str, Any] | None = None
    placeholder: str | None = None
    commands: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # language code ("" = any) → menu
    alerts: list[Alert] = field(default_factory=list)
    opened: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def bump(self) -> int:
        self.version += 1
        old, self.changed = self.changed, asyncio.Event()
        old.set()
        return self.version


MAX_ALERTS = 50
# A sandbox may run for days (a training week): each chat keeps its newest messages, the store its newest files.
# A page reloaded after that shows the newest MAX_MESSAGES; a button on a message no longer kept is answered as
# Telegram answers one on a deleted message.
MAX_MESSAGES = 500
MAX_DOCUMENTS = 200


class ChatStore:
    """Per chat: messages in order, the reply keyboard, the command menu, pop-up answers; and the sink."""

    def __init__(self, bot: Bot, clock: Callable[[], datetime] | None = None, *, strict: bool = False) -> None:
        self.bot = bot
        # strict (token mode): only demo accounts and the people this process made up are sandbox chats, so
        # that a real Telegram user can never be answered by the sandbox instead of Telegram.
        self.strict = strict
        self.issued: set[int] = set()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.chats: dict[int, ChatState] = {}
        self.default_commands: dict[str, list[dict[str, str]]] = {}
        self.documents: dict[str, tuple[int, str, str, bytes]] = {}  # id → chat, name, media type, bytes
        self.callbacks: dict[str, int] = {}  # callback query id → chat id
        self._pos = itertools.count(1)
        self._user_message_ids = itertools.count(1_500_000_000)
        self._callback_ids = itertools.count(1)
        self._doc_ids = itertools.count(1)
        self.closed = False

    # --- chats ---------------------------------------------------------------------------
    def chat(self, chat_id: int) -> ChatState:
        chat = self.chats.get(chat_id)
        if chat is None:
            chat = ChatState(id=chat_id, persona=default_persona(chat_id))
            self.chats[chat_id] = chat
        return chat

    def owns(self, chat_id: int | str | None) -> bool:
        """A chat of the sandbox: a demo account or a person made up by the sandbox (in offline mode, any id of
        the new-person range, so that a page reloaded after a restart finds its chat again)."""
        try:
            cid = int(chat_id)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        if cid in _DEMO_BY_ID or cid in self.issued:
            return True
        return not self.strict and NEW_PERSON_MIN_ID <= cid < NEW_PERSON_MIN_ID + NEW_PERSON_SPAN

    def menu(self, chat: ChatState) -> list[dict[str, str]]:
        lang = chat.persona.language_code
        for table in (chat.commands, self.default_commands):
            for key in (lang, ""):
                if key in table:
                    return table[key]
        return []

    def add_user_message(
        self, chat: ChatState, *, text: str | None = None, contact: Contact | None = None
    ) -> ChatMessage:
        msg = ChatMessage(id=next(self._user_message_ids), pos=next(self._pos), rev=0, sender="user", date=self.clock())
        if text is not None:
            msg.text, msg.html = text, html.escape(text, quote=False)
        if contact is not None:
            msg.contact = {"phone": contact.phone_number, "name": contact.first_name}
        self._keep(chat, msg)
        msg.rev = chat.bump()
        return msg

    def add_system_message(self, chat: ChatState, text: str) -> None:
        msg = ChatMessage(
            id=next(self._user_message_ids), pos=next(self._pos), rev=0, sender="system", date=self.clock()
        )
        msg.text, msg.html = text, html.escape(text, quote=False)
        self._keep(chat, msg)
        msg.rev = chat.bump()

    @staticmethod
    def _keep(chat: ChatState, msg: ChatMessage) -> None:
        """Add a message to the chat, forgetting the oldest beyond MAX_MESSAGES (the dict keeps insertion order)."""
        chat.messages[msg.id] = msg
        while len(chat.messages) > MAX_MESSAGES:
            del chat.messages[next(iter(chat.messages))]

    def new_callback_id(self, chat_id: int) -> str:
        query_id = f"sandbox-{next(self._callback_ids)}"
        self.callbacks[query_id] = chat_id
        if len(self.callbacks) > 10_000:  # old presses are never answered any more
            for key in list(self.callbacks)[:5_000]:
                del self.callbacks[key]
        return query_id

    def snapshot(self, chat_id: int, after: int = 0) -> dict[str, Any]:
        chat = self.chat(chat_id)
        changed = sorted((m for m in chat.messages.values() if m.rev > after), key=lambda m: m.pos)
        if after == 0:
            changed = [m for m in changed if not m.deleted]
        return {
            "chat_id": chat.id,
            "version": chat.version,
            "persona": chat.persona.as_json(),
            "messages": [m.as_json() for m in changed],
            "reply_keyboard": chat.reply_keyboard,
            "placeholder": chat.placeholder,
            "commands": self.menu(chat),
            "alerts": [
                {"seq": a.seq, "text": a.text, "show_alert": a.show_alert} for a in chat.alerts if a.seq > after
            ],
        }

    async def wait(
        self, chat_id: int, after: int, seconds: float, disconnected: asyncio.Future[Any] | None = None
    ) -> None:
        """Until the chat has changed past ``after``, ``seconds`` pass, the client leaves or the store closes."""
        chat = self.chat(chat_id)
        if chat.version > after or self.closed or seconds <= 0:
            return
        changed = asyncio.ensure_future(chat.changed.wait())
        waiting: set[asyncio.Future[Any]] = {changed}
        if disconnected is not None:
            waiting.add(disconnected)
        try:
            await asyncio.wait(waiting, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()

    def release_waiters(self) -> None:
        """Wake every long poll now (shutdown): the page simply polls again."""
        self.closed = True
        for chat in self.chats.values():
            chat.bump()

    # --- the sink: Bot API calls → chat state --------------------------------------------------
    async def sink(self, method: TelegramMethod[Any], result: Any) -> None:
        try:
            await self._apply(method, result)
        except Exception:  # the sandbox must never break the bot's reply path
            log.exception("sandbox: could not show %s", type(method).__name__)

    async def _apply(self, method: TelegramMethod[Any], result: Any) -> None:
        if isinstance(method, SendMessage):
            chat = self.chat(int(method.chat_id))
            msg = self._add_bot_message(chat, result, method.text)
            self._reply_markup(chat, method.reply_markup)
            msg.rev = chat.bump()
        elif isinstance(method, SendDocument):
            chat = self.chat(int(method.chat_id))
            document = await self._keep_document(chat.id, method.document)
            msg = self._add_bot_message(chat, result, method.caption or "")
            msg.document = document
            self._reply_markup(chat, method.reply_markup)
            msg.rev = chat.bump()
        elif isinstance(method, EditMessageText | EditMessageCaption | EditMessageReplyMarkup):
            self._edit(method)
        elif isinstance(method, DeleteMessage | DeleteMessages):
            ids = [method.message_id] if isinstance(method, DeleteMessage) else list(method.message_ids)
            chat = self.chat(int(method.chat_id))
            gone = [m for m in (chat.messages.get(mid) for mid in ids) if m is not None and not m.deleted]
            if gone:
                version = chat.bump()
                for msg in gone:
                    msg.deleted, msg.rev = True, version
        elif isinstance(method, AnswerCallbackQuery):
            chat_id = self.callbacks.pop(method.callback_query_id, None)
            if chat_id is not None and method.text:
                chat = self.chat(chat_id)
                alert = Alert(seq=0, text=method.text, show_alert=bool(method.show_alert))
                chat.alerts.append(alert)
                del chat.alerts[:-MAX_ALERTS]
                alert.seq = chat.bump()
        elif isinstance(method, SetMyCommands | DeleteMyCommands):
            self._commands(method)
        else:
            chat_id = getattr(method, "chat_id", None)
            if chat_id is not None and type(method).__name__ not in ("SendChatAction",):
                note = f"[sandbox: {type(method).__name__} is not shown here]"
                self.add_system_message(self.chat(int(chat_id)), note)

    def _add_bot_message(self, chat: ChatState, result: Any, text: str | None) -> ChatMessage:
        mid = result.message_id if isinstance(result, Message) else next(self._user_message_ids)
        markup = getattr(result, "reply_markup", None)
        msg = ChatMessage(id=mid, pos=next(self._pos), rev=0, sender="bot", date=self.clock())
        msg.source = text or ""
        msg.html, msg.text, msg.entities = telegram_html(text)
        msg.keyboard = markup if isinstance(markup, InlineKeyboardMarkup) else None
        self._keep(chat, msg)
        return msg

    def _reply_markup(self, chat: ChatState, markup: Any) -> None:
        if isinstance(markup, ReplyKeyboardMarkup):
            chat.reply_keyboard = _reply_keyboard_json(markup)
            chat.placeholder = markup.input_field_placeholder
        elif isinstance(markup, ReplyKeyboardRemove):
            chat.reply_keyboard = None
            chat.placeholder = None
        elif isinstance(markup, ForceReply):
            chat.placeholder = markup.input_field_placeholder

    def _edit(self, method: EditMessageText | EditMessageCaption | EditMessageReplyMarkup) -> None:
        if method.chat_id is None or method.message_id is None:
            return
        chat = self.chat(int(method.chat_id))
        msg = chat.messages.get(method.message_id)
        if msg is None or msg.deleted:
            return
        # As in Telegram: an edit without reply_markup removes the inline keyboard.
        markup = method.reply_markup
        msg.keyboard = markup if isinstance(markup, InlineKeyboardMarkup) else None
        if isinstance(method, EditMessageText):
            msg.source = method.text
            msg.html, msg.text, msg.entities = telegram_html(method.text)
            msg.edited = True
        elif isinstance(method, EditMessageCaption):
            msg.source = method.caption or ""
            msg.html, msg.text, msg.entities = telegram_html(method.caption)
            msg.edited = True
        msg.rev = chat.bump()

    def _commands(self, method: SetMyCommands | DeleteMyCommands) -> None:
        lang = method.language_code or ""
        commands = (
            [{"command": c.command, "description": c.description} for c in method.commands]
            if isinstance(method, SetMyCommands)
            else None
        )
        scope = method.scope
        if isinstance(scope, BotCommandScopeChat):
            chat = self.chat(int(scope.chat_id))
            if commands is None:
                chat.commands.pop(lang, None)
            else:
                chat.commands[lang] = commands
            chat.bump()
            return
        if scope is not None and getattr(scope, "type", "default") not in ("default", "all_private_chats"):
            return  # group scopes: no private chat shows them
        if commands is None:
            self.default_commands.pop(lang, None)
        else:
            self.default_commands[lang] = commands
        for chat in self.chats.values():
            chat.bump()

    async def _keep_document(self, chat_id: int, document: InputFile | str) -> dict[str, Any]:
        doc_id = f"d{next(self._doc_ids)}"
        if isinstance(document, InputFile):
            name = document.filename or "file"
            data = b"".join([chunk async for chunk in document.read(self.bot)])
        else:  # a file id or URL: nothing to download in the sandbox
            name, data = str(document).rsplit("/", 1)[-1] or "file", b""
        media_type = _media_type(name)
        self.documents[doc_id] = (chat_id, name, media_type, data)
        while len(self.documents) > MAX_DOCUMENTS:
            del self.documents[next(iter(self.documents))]
        return {"id": doc_id, "file_id": f"sandbox-{doc_id}", "name": name, "size": len(data), "media_type": media_type}


def _media_type(name: str) -> str:
    import mimetypes

    return mimetypes.guess_type(name)[0] or "application/octet-stream"


_DEMO_BY_ID: dict[int, DemoAccount] = {a.telegram_id: a for a in DEMO_ACCOUNTS}


def default_persona(telegram_id: int) -> Persona:
    demo = _DEMO_BY_ID.get(telegram_id)
    if demo is not None:
        return Persona(telegram_id, demo.name, label_key=demo.label_key)
    return Persona(telegram_id, f"{_NEW_NAMES[telegram_id % len(_NEW_NAMES)]}", label_key="persona.new")


# ==============================================================================================
# 4. In token mode: keep the sandbox's chats away from Telegram
# ==============================================================================================


class RoutingSession(BaseSession):
    """Calls about sandbox chats go to the in-process session; all others to the real one (Telegram)."""

    def __init__(self, real: BaseSession, local: LocalSession, owns: Callable[[int | str | None], bool]) -> None:
        super().__init__(api=real.api, timeout=real.timeout)
        self.real = real
        self.local = local
        self.owns = owns

    def _is_local(self, method: TelegramMethod[Any]) -> bool:
        if isinstance(method, AnswerCallbackQuery):
            return method.callback_query_id.startswith("sandbox-")
        scope = getattr(method, "scope", None)
        if isinstance(scope, BotCommandScopeChat):
            return self.owns(scope.chat_id)
        return self.owns(getattr(method, "chat_id", None))

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> TelegramType:
        if self._is_local(method):
            return await self.local.make_request(bot, method, timeout)
        return await self.real(bot, method, timeout)

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - BaseSession's signature
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        async for chunk in self.real.stream_content(url, headers, timeout, chunk_size, raise_for_status):
            yield chunk

    async def close(self) -> None:
        await self.real.close()
        await self.local.close()


# ==============================================================================================
# 5. The sandbox: personas, and user actions fed to the real dispatcher
# ==============================================================================================


class ButtonGone(LookupError):
    """The pressed button is no longer on that message (edited away): Telegram would not send the press."""


class Sandbox:
    def __init__(self, runtime: Any, *, allow_remote: bool = False) -> None:
        self.runtime = runtime
        self.allow_remote = allow_remote
        clock = runtime.services.ctx.clock
        self.store = ChatStore(runtime.bot, clock=clock.now, strict=not isinstance(runtime.bot.session, LocalSession))
        # Unique across restarts and apart from Telegram's own update ids: the dispatcher drops repeats
        # (bot/dedup.py, shared in Redis for a day).
        self._update_ids = itertools.count(UPDATE_ID_BASE + time.time_ns() // 1_000_000)
        self._session_before: BaseSession | None = None
        self._signals: dict[int, Any] = {}
        self._install_session()

    # --- wiring --------------------------------------------------------------------------
    def _install_session(self) -> None:
        bot: Bot = self.runtime.bot
        session = bot.session
        if isinstance(session, LocalSession):  # offline: everything is ours
            previous = session.sink
            if previous is None:
                session.sink = self.store.sink
            else:

                async def both(method: TelegramMethod[Any], result: Any) -> None:
                    maybe = previous(method, result)
                    if maybe is not None:
                        await maybe
                    await self.store.sink(method, result)

                session.sink = both
            self._session_before = None
            return
        # Token mode (explicitly enabled on a training database): only sandbox chats stay here.
        self._session_before = session
        bot.session = RoutingSession(session, LocalSession(sink=self.store.sink, record=False), self.store.owns)

    def install_signal_wakeup(self) -> None:
        """On Ctrl+C, wake the long polls so that the server stops at once instead of after ~20 s."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def handler(signum: int, frame: Any, previous: Callable[..., Any] = previous) -> None:
                loop.call_soon_threadsafe(self.store.release_waiters)
                previous(signum, frame)

            try:
                signal.signal(sig, handler)
            except ValueError:  # pragma: no cover - not the main thread after all
                continue
            self._signals[sig] = (previous, handler)

    def close(self) -> None:
        self.store.release_waiters()
        for sig, (previous, handler) in self._signals.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)
        self._signals.clear()
        session = self.runtime.bot.session
        if isinstance(session, LocalSession) and session.sink == self.store.sink:
            session.sink = None
        elif isinstance(session, RoutingSession) and self._session_before is not None:
            self.runtime.bot.session = self._session_before

    # --- personas ------------------------------------------------------------------------
    async def personas(self, lang: str) -> dict[str, Any]:
        t = translator(pick_locale(lang))
        accounts = self.runtime.services.accounts
        out = []
        for demo in DEMO_ACCOUNTS:
            actor = await accounts.resolve_actor(demo.telegram_id)
            out.append(
                {
                    "telegram_id": demo.telegram_id,
                    "name": demo.name,
                    "label": t(demo.label_key),
                    "kind": demo.kind.value,
                    "roles": sorted(r.value for r in demo.roles),
                    "faskes_code": demo.faskes_code,
                    "state": actor.state.value if actor.state else "missing",
                    "new": False,
                }
            )
        recent = []
        for chat in self.store.chats.values():
            if chat.id in _DEMO_BY_ID or not chat.opened:
                continue
            actor = await accounts.resolve_actor(chat.id)
            recent.append(
                {
                    "telegram_id": chat.id,
                    "name": chat.persona.first_name,
                    "label": t("persona.new"),
                    "state": actor.state.value if actor.state else "stranger",
                    "new": True,
                }
            )
        fresh = await self.fresh_person_id()
        return {
            "lang": t.locale,
            "strings": sandbox_strings(t.locale),
            "bot": {"name": BOT_USER.first_name, "username": BOT_USER.username},
            "personas": out,
            "recent": recent,
            "new_person": {
                "telegram_id": fresh,
                "name": default_persona(fresh).first_name,
                "label": t("persona.new"),
                "state": "stranger",
                "new": True,
            },
        }

    async def fresh_person_id(self) -> int:
        for _ in range(50):
            candidate = NEW_PERSON_MIN_ID + secrets.randbelow(NEW_PERSON_SPAN)
            if candidate in self.store.chats:
                continue
            actor = await self.runtime.services.accounts.resolve_actor(candidate)
            if actor.account_id is None:
                self.store.issued.add(candidate)
                return candidate
        raise RuntimeError("no free telegram id for a new person")  # pragma: no cover

    async def open_chat(self, telegram_id: int, *, lang: str | None = None, name: str | None = None) -> dict[str, Any]:
        """A persona opens the chat: remember who they are, and show the menu set for them.

        The demo accounts were written by ``seed-demo``, not activated through the bot, so nobody set their
        chat menu yet; the real notifier sets it here, exactly as it does after an approval.
        """
        chat = self.store.chat(telegram_id)
        if lang:
            chat.persona.language_code = pick_locale(lang)
        if name and telegram_id not in _DEMO_BY_ID:
            chat.persona.first_name = name.strip()[:64] or chat.persona.first_name
        first = not chat.opened
        chat.opened = True
        if first and not chat.commands:
            await self.runtime.services.ctx.notifier.refresh_menu(telegram_id)
        chat.bump()
        return self.store.snapshot(telegram_id)

    # --- user actions --------------------------------------------------------------------
    async def send_text(self, telegram_id: int, text: str) -> int:
        chat = self.store.chat(telegram_id)
        async with chat.lock:
            msg = self.store.add_user_message(chat, text=text)
            self._hide_one_time_keyboard(chat)
            update = self._message_update(chat, msg, text=text)
            await self._feed(chat, update)
        return chat.version

    async def send_contact(self, telegram_id: int) -> int:
        chat = self.store.chat(telegram_id)
        persona = chat.persona
        contact = Contact(phone_number=persona.phone, first_name=persona.first_name, user_id=persona.telegram_id)
        async with chat.lock:
            msg = self.store.add_user_message(chat, contact=contact)
            self._hide_one_time_keyboard(chat)
            await self._feed(chat, self._message_update(chat, msg, contact=contact))
        return chat.version

    async def press(self, telegram_id: int, message_id: int, data: str) -> int:
        chat = self.store.chat(telegram_id)
        async with chat.lock:
            msg = chat.messages.get(message_id)
            if msg is None or msg.deleted or msg.keyboard is None or not _has_button(msg.keyboard, data):
                raise ButtonGone(data)
            query = CallbackQuery(
                id=self.store.new_callback_id(chat.id),
                from_user=chat.persona.user,
                chat_instance=f"sandbox-{chat.id}",
                data=data,
                message=msg.as_message(chat.persona.chat, chat.persona.user),
            )
            await self._feed(chat, Update(update_id=next(self._update_ids), callback_query=query))
        return chat.version

    def _hide_one_time_keyboard(self, chat: ChatState) -> None:
        if chat.reply_keyboard and chat.reply_keyboard.get("one_time"):
            chat.reply_keyboard = None
            chat.bump()

    def _message_update(
        self, chat: ChatState, msg: ChatMessage, *, text: str | None = None, contact: Contact | None = None
    ) -> Update:
        entities = None
        if text and text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            entities = [MessageEntity(type="bot_command", offset=0, length=_utf16_len(command))]
        message = Message(
            message_id=msg.id,
            date=msg.date,
            chat=chat.persona.chat,
            from_user=chat.persona.user,
            text=text,
            entities=entities,
            contact=contact,
        )
        return Update(update_id=next(self._update_ids), message=message)

    async def _feed(self, chat: ChatState, update: Update) -> None:
        try:
            await self.runtime.dispatcher.feed_update(self.runtime.bot, update)
        except Exception as exc:  # shown in the chat; the log has the details
            log.exception("sandbox: update %s failed", update.update_id)
            self.store.add_system_message(chat, f"[sandbox: the bot failed on this update: {type(exc).__name__}]")


def _has_button(markup: InlineKeyboardMarkup, data: str) -> bool:
    return any(b.callback_data == data for row in markup.inline_keyboard for b in row)


def sandbox_strings(locale: str) -> dict[str, str]:
    """The page's own words (``sandbox.*`` in ``bot/locales/*.sandbox.toml``), without the prefix."""
    from bot.i18n import catalog

    own = catalog(pick_locale(locale))
    fallback = catalog("id")
    keys: Iterable[str] = (k for k in fallback if k.startswith("sandbox."))
    return {k.removeprefix("sandbox."): own.get(k, fallback[k]) for k in keys}


# ==============================================================================================
# 6. The composition root's hook
# ==============================================================================================


def attach(app: Any, runtime: Any) -> Sandbox | None:
    """Called once, right after the runtime is built. Puts the sandbox (or None when off) on ``app.state``."""
    existing = getattr(app.state, "sandbox", None)
    if existing is not None and existing.runtime is runtime:
        return existing  # type: ignore[no-any-return]
    decision = decide(runtime.settings)
    app.state.sandbox_decision = decision
    if not decision.enabled:
        app.state.sandbox = None
        log.info("sandbox off: %s", decision.reason)
        return None
    sandbox = Sandbox(runtime, allow_remote=remote_allowed())
    app.state.sandbox = sandbox
    sandbox.install_signal_wakeup()
    # Lives as long as the runtime: Runtime.close cancels it, and the sandbox lets go of the bot (a done
    # callback runs even when the task is cancelled before it ever started).
    task = asyncio.get_running_loop().create_task(_forever(), name="sandbox")
    task.add_done_callback(lambda _: sandbox.close())
    runtime.tasks.append(task)
    log.warning(
        "SIMULASI sandbox on (%s): /sandbox, loopback clients only%s",
        decision.reason,
        " (remote clients allowed)" if sandbox.allow_remote else "",
    )
    return sandbox


async def _forever() -> None:
    await asyncio.get_running_loop().create_future()
