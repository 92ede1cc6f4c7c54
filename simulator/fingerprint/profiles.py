"""What each emulated module model answers to: its instruction set and its reply shapes.

The confirmation-code tables, image geometry, library capacity, baud rates and template size come from
`drivers.fingerprint.protocol.MODELS` (one table per model, shared with the driver). This file adds
what only an emulator needs: which instructions the model knows, what it answers to the others, and
the fixed length of each acknowledgement.
"""
from __future__ import annotations

from dataclasses import dataclass

from drivers.fingerprint.protocol import ModuleModel, get_model
from drivers.fingerprint.protocol import Instruction as I

CORE = frozenset({
    I.GEN_IMG, I.IMG2TZ, I.MATCH, I.SEARCH, I.REG_MODEL, I.STORE, I.LOAD_CHAR, I.UP_CHAR, I.DOWN_CHAR,
    I.UP_IMAGE, I.DOWN_IMAGE, I.DELETE_CHAR, I.EMPTY, I.SET_SYS_PARA, I.READ_SYS_PARA, I.SET_PWD, I.VFY_PWD,
    I.GET_RANDOM_CODE, I.SET_ADDR, I.WRITE_NOTEPAD, I.READ_NOTEPAD, I.HI_SPEED_SEARCH, I.TEMPLATE_NUM,
    I.READ_INDEX_TABLE,
})  # fmt: skip

R503_EXTRAS = frozenset({
    I.GET_IMAGE_EX, I.AURA_LED_CONFIG, I.CHECK_SENSOR, I.GET_FIRMWARE_VERSION, I.SOFT_RESET, I.HANDSHAKE,
})  # fmt: skip

# Data bytes after the confirmation code in each acknowledgement. Real modules send these lengths
# whatever the confirmation code (zeros when the command failed), and clients such as
# adafruit-circuitpython-fingerprint read exactly this many bytes.
REPLY_DATA_LENGTH: dict[int, int] = {
    I.MATCH: 2,  # score
    I.SEARCH: 4,  # page, score
    I.HI_SPEED_SEARCH: 4,
    I.READ_SYS_PARA: 16,
    I.GET_RANDOM_CODE: 4,
    I.READ_NOTEPAD: 32,
    I.TEMPLATE_NUM: 2,
    I.READ_INDEX_TABLE: 32,
    I.GET_FIRMWARE_VERSION: 32,
}

# Commands a module runs before the password is verified (when its password is not the default 0).
PASSWORD_EXEMPT = frozenset({I.VFY_PWD, I.HANDSHAKE, I.ZFM_HANDSHAKE})


@dataclass(frozen=True)
class Profile:
    name: str
    model: ModuleModel
    instructions: frozenset[int]
    unknown_instruction_code: int  # the answer to an instruction the model does not have
    invalid_notepad_code: int  # the answer to a notepad page outside 0..15
    firmware: str
    system_id: int = 0x0009


PROFILES: dict[str, Profile] = {
    # The ZFM/R30x manuals define no "unsupported command" code; these modules answer 0x01
    # ("error receiving the package"), the code they use for any packet they cannot act on.
    "zfm": Profile("zfm", get_model("zfm"), CORE | {I.ZFM_HANDSHAKE}, 0x01, 0x01, "biogate-virtual-zfm 1.0"),
    # AS608: 0x13 doubles as "command invalid"; it has its own notepad-page code (0x1C).
    "as608": Profile("as608", get_model("as608"), CORE | {I.ZFM_HANDSHAKE}, 0x13, 0x1C, "biogate-virtual-as608 1.0"),
    # R503: 0xFC "unsupported command" (AutoEnroll / AutoIdentify are not emulated and answer it too).
    "r503": Profile("r503", get_model("r503"), CORE | R503_EXTRAS, 0xFC, 0x1C, "biogate-virtual-r503 1.0"),
}


def get_profile(name: str) -> Profile:
    """The profile of a model the driver knows, by name or alias (`protocol.get_model`: "r307" is a "zfm")."""
    return PROFILES[get_model(name).name]
