"""A refusal's or note's settings named as each surface spells them.

``gen3c generate``, batch manifests and ``gen3c.generate()`` share the request's checks
(:mod:`gen3c.pipelines.settings`, :mod:`gen3c.pipelines.options`, and what a run refuses), which
word their refusals and notes for the command line: ``--seed``, ``--generator gen3c``, ``--no_compile``.
The command line's words stay as they are; a manifest row's are respelled in its keys
(:func:`row_spelling`: ``seed``, ``"generator": "gen3c"``, ``compile false``, ``--video_save_name``
as ``name``) and a Python call's in its keyword arguments (:func:`keyword_spelling`: ``seed=``,
``generator="gen3c"``, ``compile=False``, ``--fp8`` as ``fp8=True``; ``load_generator()``'s:
:func:`loader_spelling`), so each message is written once; notes through
:func:`gen3c.errors.spelled_notes`. Flags no such setting has (``--output_folder``), quoted values
and `command lines` (a path, ``torchrun … --num_gpus N``) are left as they are. A message whose words would read as a flag's value is reworded instead
("T5 never loads with --disable_prompt_encoder"). Imports no torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields

from gen3c.pipelines.options import GENERATOR_OPTIONS
from gen3c.pipelines.settings import GenerationRequest

#: A message's `command line` or 'quoted value' (never respelled), or a flag: ``--name``
#: (``--no_name``) not inside a word nor right after a ``name=`` this module wrote, with the value after it (a number, a 'quoted value' (or "one"
#: with a quote in it, as repr writes it), a PLACEHOLDER or a word: a path, ``cuda:1``,
#: ``fx,fy,cx,cy``), where there is one.
_TOKEN = re.compile(
    r"(?P<quoted>`[^`]*`|(?<!\w)'[^']*'(?!\w))"
    r"|(?<![\w/=-])--(?P<off>no_)?(?P<name>[a-z][a-z0-9_]*)\b"
    r"(?: (?P<value>-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w.]|\.\w)|'[^']*'(?!\w)" r'|"[^"]*"(?!\w)'
    r"|(?:\.{0,2}/|~/)?\w[\w/-]*(?:[.:,][\w/-]+)*(?=[\s:;)]|[.,](?:\s|$)|$)))?"
)
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?(?:e[-+]?\d+)?|inf|nan)")  # as a float's text: nan, inf too
#: Words that follow a flag in a sentence ("--model and --checkpoint_dir …"): not its value.
_WORDS = frozenset(
    "a an and applies apply are as at both can cannot does each estimates for from gives has if in instead is it keeps makes "
    "must names needs not of on only or out reads replaces says sets shape shapes takes the to use was were with without would".split()
)
_REQUEST_KEYS = [f.name for f in fields(GenerationRequest) if f.name != "generator_options"]
#: A row's keys: the request's settings (less the two the batch sets), its output name, the gen3c generator's options.
_ROW_NAMES = frozenset({"name", *_REQUEST_KEYS, *GENERATOR_OPTIONS} - {"video_save_folder", "video_save_name"})
#: ``gen3c.generate()``'s keyword arguments by the flag they stand for: its image and depth are its first two.
_KEYWORDS = {**{key: key for key in (*_REQUEST_KEYS, *GENERATOR_OPTIONS)}, "input_image_path": "image", "depth_path": "depth", "resume": "resume"}
#: ``load_generator()``'s: its first names the model (a folder, hub id or packaged model's name).
_LOADER_KEYWORDS = {**{key: key for key in (*_REQUEST_KEYS, *GENERATOR_OPTIONS)}, "checkpoint_dir": "checkpoint", "model": "checkpoint"}
_TEXT_SETTINGS = frozenset(
    [f.name for f in fields(GenerationRequest) if str(f.type).startswith("str")] + [k for k, kind in GENERATOR_OPTIONS.items() if kind is str]
)
#: Switches: ``--fp8`` takes no value (the word after it is the sentence's: "with --disable_prompt_encoder T5 …").
_SWITCHES = frozenset(
    [f.name for f in fields(GenerationRequest) if str(f.type) == "bool"] + [k for k, kind in GENERATOR_OPTIONS.items() if kind is bool] + ["resume"]
)


#: A fix that drops a setting ("drop it", "drop them"), but not "drop it or --flag" (the flag is
#: the other thing to drop there): said as a row drops one, by its key or its cell.
_DROP = re.compile(r"\bdrop (it|them)\b(?! or (?!pass\b))")


def row_spelling(message: str, cells: bool = False) -> str:
    """``message`` (worded for the command line) in a manifest row's keys: ``--seed 3`` as
    ``seed 3``, ``--generator gen3c`` as ``"generator": "gen3c"``, ``--no_compile`` as ``compile
    false``; and "drop it" ("drop them") as a JSON row drops a setting, "remove the key" ("remove
    the keys"), or with ``cells`` (a CSV row, whose columns other rows may fill) "leave its cell
    empty" ("leave their cells empty")."""

    def key(name: str, off: bool, value: str | None) -> str | None:
        if name == "video_save_name":  # a job's outputs are named by its row's name
            name = "name"
        if name == "video_save_folder":  # and written to gen3c batch's folder
            return f"--output_folder{f' {value}' if value is not None else ''}"
        if name not in _ROW_NAMES:
            return None
        if name == "generator" and value == "gen3c":
            return '"generator": "gen3c"'
        return f"{name}{' false' if off else ''}{f' {value}' if value is not None else ''}"

    def drop(match: re.Match) -> str:
        one = match[1] == "it"
        if cells:
            return "leave its cell empty" if one else "leave their cells empty"
        return "remove the key" if one else "remove the keys"

    return _DROP.sub(drop, _respelled(message, key))


def keyword_spelling(message: str) -> str:
    """``message`` (worded for the command line) in ``gen3c.generate()``'s keyword arguments:
    ``--seed 3`` as ``seed=3``, ``--seed`` as ``seed=``, ``--generator gen3c`` as ``generator="gen3c"``,
    ``--no_compile`` as ``compile=False``, ``--input_image_path`` as ``image=``."""
    return _keywords_spelling(message, _KEYWORDS)


def loader_spelling(message: str) -> str:
    """``message`` (worded for the command line) in :func:`~gen3c.pipelines.loading.load_generator`'s
    keyword arguments: as :func:`keyword_spelling`, and a model named by ``--model`` or
    ``--checkpoint_dir`` as its ``checkpoint`` (``--model tiny`` as ``checkpoint="tiny"``)."""
    return _keywords_spelling(message, _LOADER_KEYWORDS)


def _keywords_spelling(message: str, keywords: dict[str, str]) -> str:
    """``message`` with each flag that ``keywords`` names (by the keyword argument it stands for) as that keyword."""

    def keyword(name: str, off: bool, value: str | None) -> str | None:
        if name not in keywords:
            return None
        name_ = keywords[name]
        if off:
            return f"{name_}=False{f' {value}' if value is not None else ''}"
        if name in _SWITCHES:
            return f"{name_}=True"
        if value is None:
            return f"{name_}="
        if value[0] in "'\"" or _NUMBER.fullmatch(value) or value.isupper():  # a number, a quoted value, a PLACEHOLDER
            return f"{name_}={value}"
        if name in _TEXT_SETTINGS and value not in _WORDS:
            return f'{name_}="{value}"'
        return f"{name_}= {value}"  # (the sentence goes on: "--model and …")

    return _respelled(message, keyword)


def _respelled(message: str, spell: Callable[[str, bool, str | None], str | None]) -> str:
    """``message`` with each flag outside quotes replaced by ``spell(name, off, value)`` (None: kept)."""

    def one(match: re.Match) -> str:
        if match["quoted"] is not None:
            return match[0]
        name, value = match["name"], match["value"]
        if value is not None and name in _SWITCHES and match["off"] is None:  # a switch's next word is the sentence's
            spelled = spell(name, False, None)
            return match[0] if spelled is None else f"{spelled}{match[0][match.end('name') - match.start():]}"
        spelled = spell(name, match["off"] is not None, value)
        return match[0] if spelled is None else spelled

    return _TOKEN.sub(one, message)
