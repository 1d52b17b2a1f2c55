"""What each kind of actor may do, as commands: /start, /bantuan and the chat's command menu."""

from __future__ import annotations

from core.domain.accounts import AccountKind, Actor, Role

ALWAYS = ("bantuan", "batal", "bahasa")


def commands_for(actor: Actor) -> list[str]:
    """Command names (without the slash) in menu order. Only a convenience: core checks every action."""
    if not actor.is_active:
        return ["start", "daftar", *ALWAYS]
    cmds: list[str] = []
    if actor.kind is AccountKind.FASKES:
        cmds.append("cari")
        if actor.roles & {Role.MEJA1, Role.MEJA2, Role.MEJA4}:
            cmds.append("antrian")
        if Role.MEJA2 in actor.roles:
            cmds.append("skrining")
        if Role.MEJA4 in actor.roles:
            cmds.append("vaksinasi")
        if Role.VERIFIKASI in actor.roles:
            cmds.append("verifikasi")
    elif actor.kind in (AccountKind.DINKES, AccountKind.CENTRAL):
        cmds += ["permintaan", "akun", "cabut", "tinjau", "cari"]
        if actor.kind is AccountKind.CENTRAL:
            cmds.append("dinkes")
    return [*cmds, *ALWAYS]
