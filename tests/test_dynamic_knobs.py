"""Knobs by data flow (compliance/dynamic/knobs.py), the eval preset's caps (eval_preset.py) and the
run's own configuration (plan.py): on scripts written in the shape of the records, then on the
real corpus in ../shared (skipped where absent)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import yaml

from pgolf.compliance.dynamic.eval_preset import eval_preset
from pgolf.compliance.dynamic.knobs import discover
from pgolf.compliance.dynamic.plan import plan_run, readme_assignments

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus-dev"

RECORD_SHAPED = textwrap.dedent("""
    import os
    from dataclasses import dataclass, field
    import torch

    def _env_int(name, default):
        return int(os.environ.get(name, default))

    E = os.environ.get

    class Hyperparameters:
        ttt_epochs = _env_int("TTT_EPOCHS", 20)
        ttt_chunk_tokens = int(os.environ.get("TTT_CHUNK_TOKENS", 32768))
        eval_stride = int(E("EVAL_STRIDE", "64"))
        train_seq_len = int(os.environ.get("TRAIN_SEQ_LEN", 2048))
        ngram_buckets = int(os.environ.get("NGRAM_BUCKETS", 4194304))
        table_bits = int(os.environ.get("NGRAM_OPEN_TABLE_BITS", 26))
        ngram_order = int(os.environ.get("NGRAM_ORDER", 11))
        slot_lr = float(os.environ.get("SLOT_LR", 0.012))
        gen_len = int(os.environ.get("AR_GEN_SEQ_LEN", 2048))

    @dataclass
    class SlotConfig:
        steps: int = field(default_factory=lambda: int(os.environ.get("SLOT_STEPS", 48)))

    def adapt(model, opt, chunk, epochs):
        for epoch in range(epochs):
            loss = model(chunk).sum()
            loss.backward()
            opt.step()

    def ttt(args, model, opt, val):
        num_chunks = (val.numel() + args.ttt_chunk_tokens - 1) // args.ttt_chunk_tokens
        for ci in range(num_chunks):
            adapt(model, opt, val, epochs=args.ttt_epochs)

    def slot(args, cfg, model, opt, val):
        windows = list(range(0, val.numel(), args.eval_stride))
        for step in range(getattr(cfg, "steps", 8)):
            model(val).sum().backward()
            opt.step()

    def ngram(args, tokens):
        table = torch.zeros(args.ngram_buckets, dtype=torch.int32)
        mask = (1 << args.table_bits) - 1
        for order in range(2, args.ngram_order + 1):
            pass

    def selfgen(args, model):
        for t in range(args.gen_len):
            pass

    def fixed_finetune(model, opt, val):
        for epoch in range(30):
            model(val).sum().backward()
            opt.step()
""")


@pytest.fixture(scope="module")
def kmap():
    return discover(RECORD_SHAPED)


def test_knobs_are_followed_through_helpers_aliases_fields_getattr_and_parameters(kmap):
    assert {"TTT_EPOCHS", "EVAL_STRIDE", "SLOT_STEPS", "NGRAM_BUCKETS"} <= set(kmap.knobs)
    assert kmap.knobs["TTT_EPOCHS"].default == 20 and kmap.knobs["EVAL_STRIDE"].default == "64"
    assert set(kmap.knobs["TTT_EPOCHS"].roles) == {"update_loop"}  # helper, field, keyword parameter
    assert set(kmap.knobs["SLOT_STEPS"].roles) == {"update_loop"}  # dataclass field read by getattr
    assert "update_chunk" in kmap.knobs["TTT_CHUNK_TOKENS"].roles  # a divisor of an update loop's count
    assert "update_loop" not in kmap.knobs["TTT_CHUNK_TOKENS"].roles
    assert "chunk" in kmap.knobs["EVAL_STRIDE"].roles  # the step of the windows' range
    assert "table" in kmap.knobs["NGRAM_BUCKETS"].roles and "table_bits" in kmap.knobs["NGRAM_OPEN_TABLE_BITS"].roles
    assert "loop" in kmap.knobs["NGRAM_ORDER"].roles
    assert not kmap.knobs["SLOT_LR"].roles


def test_an_update_loop_bounded_by_a_literal_is_reported_as_unsettable(kmap):
    assert [(loop.count, RECORD_SHAPED.splitlines()[loop.line - 1].strip()) for loop in kmap.literal_update_loops] == [
        (30, "for epoch in range(30):")
    ]
    preset = eval_preset(kmap, {}, set(), 16384)
    assert any("literal 30" in text for text in preset.unsettable)


def test_eval_preset_caps_what_multiplies_evaluation_work_and_nothing_else(kmap):
    preset = eval_preset(kmap, {"SLOT_STEPS": "24"}, set(), 16384)
    capped = {c.knob: (c.before, c.after, c.role) for c in preset.capped}
    assert capped["TTT_EPOCHS"] == ("20", "2", "update_loop")
    assert capped["SLOT_STEPS"] == ("24", "2", "update_loop")  # the run's value, not the default
    assert capped["NGRAM_ORDER"][1] == "4" and capped["NGRAM_BUCKETS"][1] == "65536"
    assert capped["NGRAM_OPEN_TABLE_BITS"][1] == "16"
    assert capped["EVAL_STRIDE"][:2] == ("64", "256")  # fewer windows, each target still in 8
    assert capped["TTT_CHUNK_TOKENS"][:2] == ("32768", "4096")  # several chunks of the canary
    assert "TRAIN_SEQ_LEN" not in capped and "AR_GEN_SEQ_LEN" not in capped  # sequence lengths stay real
    assert "SLOT_LR" not in capped
    assert preset.env == {k: v[1] for k, v in capped.items()}


def test_knobs_set_on_purpose_and_the_launchers_are_never_capped(kmap):
    preset = eval_preset(kmap, {"TTT_EPOCHS": "5"}, {"TTT_EPOCHS", "TTT_CHUNK_TOKENS"}, 16384)
    assert not {"TTT_EPOCHS", "TTT_CHUNK_TOKENS"} & {c.knob for c in preset.capped}
    rank = discover("import os\nfor r in range(int(os.environ.get('WORLD_SIZE', 8))):\n    pass\n")
    assert eval_preset(rank, {}, set(), 16384).capped == []


def test_a_small_canary_still_gets_chunks_of_two_sequences(kmap):
    capped = {c.knob: c.after for c in eval_preset(kmap, {}, set(), 4096).capped}
    assert capped["TTT_CHUNK_TOKENS"] == "4096"


def test_a_source_that_does_not_parse_says_so():
    preset = eval_preset(discover("def f(:\n"), {}, set(), 16384)
    assert preset.unsettable and "did not parse" in preset.unsettable[0]


def test_readme_code_blocks_are_a_run_configuration():
    text = 'run it:\n```bash\nMODEL_PRESET=lean\nexport NGRAM_TWO_PASS_ENABLED=1\nXY="a b" \\\n```\nFOO=1\n'
    assert readme_assignments(text) == {"MODEL_PRESET": "lean", "NGRAM_TWO_PASS_ENABLED": "1", "XY": "a b"}


def test_the_run_configuration_maps_dumps_to_knobs_and_drops_paths_and_the_launchers(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    (folder / "train_gpt.py").write_text(
        textwrap.dedent("""
        import os
        class Hyperparameters:
            slot_enabled = bool(int(os.environ.get("SLOT_ENABLED", "0")))
            slot_steps = int(os.environ.get("SLOT_STEPS", 8))
            tokenizer_path = os.environ.get("TOKENIZER_PATH", "./tok.model")
            world = int(os.environ.get("WORLD_SIZE", 1))
    """)
    )
    (folder / "README.md").write_text(
        "```\nTOKENIZER_PATH=./tokenizers/x.model\nWORLD_SIZE=8\nSLOT_STEPS=16\nLD_PRELOAD=/evil.so\n```\n"
    )
    (folder / "train_seed1.log").write_text(
        "slot_enabled: True\nfinal_int8_zlib_roundtrip_exact val_loss:2.0 val_bpb:1.0\n"
    )
    source = (folder / "train_gpt.py").read_text()
    plan = plan_run(folder / "train_gpt.py", source, {"SLOT_STEPS": "3"}, preset=True)
    assert plan.run_config.get("SLOT_STEPS") == "16"
    assert "TOKENIZER_PATH" not in plan.run_config and "WORLD_SIZE" not in plan.run_config
    assert "LD_PRELOAD" not in plan.run_config
    env, caps = plan.environment(16384)
    assert env["SLOT_STEPS"] == "3"  # --set wins, and is not capped
    assert not caps.capped


SWITCHED = textwrap.dedent("""
    import os
    class Hyperparameters:
        ngram_eval = bool(int(os.environ.get("NGRAM_EVAL", "0")))
        use_ttt = bool(int(os.environ.get("USE_TTT", "0")))
        slot_on = bool(int(os.environ.get("SLOT_ON", "1")))
        order = int(os.environ.get("NGRAM_ORDER", 9))
    def log0(msg):
        print(msg)
    def main(args, rank):
        log0(f"final_int6_roundtrip val_loss:{1.0:.4f} val_bpb:{0.5:.4f}")
        if args.use_ttt:
            log0(f"Starting TTT: {args.order} epochs")
        if args.ngram_eval and rank == 0:
            log0(f"Starting N-gram eval: order 2-{args.order}")
            log0("NGRAM_EVAL_ORDER_MAX")
        else:
            log0(f"skipping the n-gram eval: {args.order}")
        if args.slot_on:
            log0("SLOT pass starting now")
""")


def _switched_record(tmp_path: Path, log: str, readme: str = "") -> Path:
    folder = tmp_path / "rec"
    folder.mkdir()
    (folder / "train_gpt.py").write_text(SWITCHED)
    (folder / "README.md").write_text(readme)
    (folder / "train_seed1.log").write_text(log)
    return folder


def test_a_branch_the_submitted_log_printed_from_turns_its_switch_on(tmp_path):
    log = "Starting N-gram eval: order 2-12\nSLOT pass starting now\nfinal_int6_roundtrip val_loss:1.0 val_bpb:0.5\n"
    folder = _switched_record(tmp_path, log)
    plan = plan_run(folder / "train_gpt.py", SWITCHED, {}, preset=True)
    assert plan.run_config.get("NGRAM_EVAL") == "1"
    assert "USE_TTT" not in plan.run_config  # its line is not in the log
    assert "SLOT_ON" not in plan.run_config  # on by default: nothing to turn on
    assert plan.environment(16384)[0]["NGRAM_EVAL"] == "1"


def test_log_switches_never_override_an_explicit_value(tmp_path):
    log = "Starting N-gram eval: order 2-12\nStarting TTT: 3 epochs\n"
    folder = _switched_record(tmp_path, log, readme="```\nNGRAM_EVAL=0\n```\n")
    plan = plan_run(folder / "train_gpt.py", SWITCHED, {}, preset=True)
    assert plan.run_config["NGRAM_EVAL"] == "0"
    assert plan.run_config["USE_TTT"] == "1"


def test_a_bare_key_in_the_log_is_no_printed_line(tmp_path):
    folder = _switched_record(tmp_path, "NGRAM_EVAL_ORDER_MAX\n")
    plan = plan_run(folder / "train_gpt.py", SWITCHED, {}, preset=True)
    assert "NGRAM_EVAL" not in plan.run_config


def test_a_line_printed_from_two_places_proves_no_switch(tmp_path):
    source = SWITCHED.replace('log0("SLOT pass starting now")', 'log0(f"Starting TTT: {args.order} epochs")')
    folder = _switched_record(tmp_path, "Starting TTT: 3 epochs\n")
    plan = plan_run(folder / "train_gpt.py", source, {}, preset=True)
    assert "USE_TTT" not in plan.run_config


# ---------------------------------------------------------------- the real corpus


def _corpus_entries():
    if not (CORPUS / "LABELS.yaml").is_file():
        return []
    return yaml.safe_load((CORPUS / "LABELS.yaml").read_text())["entries"]


def _plan(entry_id: str):
    from pgolf.compliance.record import load_record

    entry = next((e for e in _corpus_entries() if e["id"] == entry_id), None)
    if entry is None:
        pytest.skip(f"{entry_id} not in {CORPUS}")
    record = load_record(CORPUS / entry["folder"])
    plan = plan_run(CORPUS / entry["folder"] / record.script.rel, record.script.text, {}, preset=True)
    return plan, {c.knob: c.after for c in plan.environment(16384)[1].capped}


@pytest.mark.parametrize(
    "entry_id, knob, after",
    [
        ("illegal-d06-ttt20ep-pre-eval-pr398", "TTT_EPOCHS", "2"),
        ("illegal-d13-slot48-pr1321", "SLOT_STEPS", "2"),
        ("illegal-d03-parallel-prequant-21ep-pr1735", "PREQUANT_TTT_EPOCHS", "2"),
        ("illegal-d20-ngram-11gram-hedge-pr909", "NGRAM_BUCKETS", "65536"),
        ("illegal-d18-waterloo-selfexclusion-pr881", "NGRAM_MAX_ORDER", "4"),
        ("legal-d22-caseops-taper-phased-pr1729", "PHASED_TTT_PREFIX_DOCS", "16"),  # half the canary's documents
    ],
)
def test_real_records_get_their_evaluation_work_capped(entry_id, knob, after):
    _, capped = _plan(entry_id)
    assert capped.get(knob) == after, capped


def test_distributed_records_run_on_two_ranks_and_their_batches_fit_them():
    from pgolf.compliance.dynamic.harness import ranks

    plan, _ = _plan("legal-d22-caseops-taper-phased-pr1729")
    env = plan.environment(16384)[0]
    assert plan.distributed and ranks(0, plan.distributed) == (2 if (os.cpu_count() or 1) >= 2 else 1)
    assert ranks(3, plan.distributed) == 3 and ranks(0, False) == 1
    assert env["TRAIN_BATCH_TOKENS"] == env["VAL_BATCH_TOKENS"] == str(8 * 2048)  # one sequence per micro-batch
    assert plan.sidecar  # it reads fineweb_val_bytes_*


def test_a_runs_own_configuration_switches_its_technique_on():
    plan, _ = _plan("illegal-d16-full-rescore-ngram-pr888")  # README: a "key environment" block
    assert plan.run_config.get("NGRAM_TWO_PASS_ENABLED") == "1" and plan.run_config.get("NGRAM_FULL_RESCORE") == "1"
    plan, _ = _plan("illegal-d15-shared-delta-slot-pr1291")  # the log's dump: slot_enabled: True
    assert plan.run_config.get("SLOT_ENABLED") == "1"


def test_no_corpus_script_gets_a_sequence_length_or_a_model_size_capped():
    entries = _corpus_entries()
    if not entries:
        pytest.skip(f"{CORPUS} not found (CI provides ../shared)")
    for entry in entries:
        if not entry["id"].startswith(("legal", "illegal-d0", "illegal-d1")):
            continue
        _, capped = _plan(entry["id"])
        shaped = [k for k in capped if any(w in k for w in ("SEQ_LEN", "VOCAB", "DIM", "HEADS", "LAYERS"))]
        assert not shaped, (entry["id"], shaped)


def test_a_dump_key_maps_to_a_knob_only_when_it_says_the_same_words(tmp_path):
    folder = tmp_path / "rec"
    folder.mkdir()
    source = textwrap.dedent("""
        import os
        def normalize(text, mode):
            return text.lower() if mode == "lower" else text
        ttt_epochs = int(os.environ.get("TTT_NUM_EPOCHS", 3))
        word_normalize = os.environ.get("WORD_NORMALIZE", "lower")
        normalize("x", mode=word_normalize)
    """)
    (folder / "train_gpt.py").write_text(source)
    (folder / "train_seed1.log").write_text("torch_compile:disable=False mode:inherit\nttt_epochs:5\n")
    plan = plan_run(folder / "train_gpt.py", source, {}, preset=True)
    assert "WORD_NORMALIZE" not in plan.run_config
    assert plan.run_config.get("TTT_NUM_EPOCHS") == "5"


def test_a_log_that_embeds_the_source_switches_nothing_on(tmp_path):
    embedded = "\n".join("    " + line for line in SWITCHED.splitlines())
    folder = _switched_record(tmp_path, embedded + "\nfinal_int6_roundtrip val_loss:1.0 val_bpb:0.5\n")
    plan = plan_run(folder / "train_gpt.py", SWITCHED, {}, preset=True)
    assert "USE_TTT" not in plan.run_config and "NGRAM_EVAL" not in plan.run_config
