"""Shared test setup: offline, headless, and one tiny Llama built locally on the embedded model's tokenizer."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Qt keeps view preferences (Simple/Expert, theme, the planned GPU) under XDG_CONFIG_HOME: the tests get a folder of
# their own, so they never read or change the user's settings.
import tempfile  # noqa: E402

os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="ftstudio-test-settings-")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama (sizes K-quant friendly) with SmolLM2's real tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from studio.models import embedded_model_dir

    folder = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(autouse=True)
def default_view_preferences():
    """Each test starts in the app's defaults (Simple view, the system theme, the detected GPU): a window test
    that stopped halfway in Expert view, or with a planned 24 GB card, must not change what the next test sees."""
    import sys

    if "PySide6.QtCore" in sys.modules:
        from PySide6.QtCore import QSettings

        QSettings().clear()
    yield


@pytest.fixture
def sample_data() -> Path:
    return Path(__file__).resolve().parent.parent / "resources" / "samples" / "pirate_chat.jsonl"


@pytest.fixture(scope="session")
def small_vocab_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with a 512-token vocabulary of its own: a byte-level BPE trained on
    the pirate sample, with the ChatML template. It needs no embedded model (so the GPU machine can build it
    too), and its output layer is small, which bf16 on a CPU needs: most CPUs have no bf16 matrix units, and
    PyTorch's fallback for the output layer's backward pass takes about 30 s a step with a 49k vocabulary."""
    import json

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from studio.data.tokenize import TEMPLATES
    from studio.paths import RESOURCES

    folder = tmp_path_factory.mktemp("small-vocab-llama")
    rows = (RESOURCES / "samples" / "pirate_chat.jsonl").read_text(encoding="utf-8").splitlines()
    texts = [m["content"] for line in rows if line.strip() for m in json.loads(line)["messages"]]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts + ["system user assistant"], trainers.BpeTrainer(
        vocab_size=512, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", chat_template=TEMPLATES["chatml"])
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture
def memory_cgroup():
    """A memory cgroup (v1 controller) that holds 400 MB and may not swap: a process moved into it that needs
    more is killed by the kernel's out-of-memory killer, exactly as when RAM runs out. It is made inside this
    process's own memory group, as the app's worker would be, so that group's kill count goes up as it does
    for a real out-of-memory kill. Needs root on Linux; skipped elsewhere."""
    import os

    own = next((line.split(":", 2)[2] for line in _read_lines("/proc/self/cgroup")
                if "memory" in line.split(":", 2)[1].split(",")), None)
    if own is None:
        pytest.skip("no v1 memory cgroup here")
    folder = Path("/sys/fs/cgroup/memory") / own.lstrip("/") / f"ftstudio-test-{os.getpid()}"
    try:
        folder.mkdir()
        (folder / "memory.limit_in_bytes").write_text(str(400 * 2**20))
        (folder / "memory.swappiness").write_text("0")  # with swap, the limit alone only slows it down
        if (folder / "memory.memsw.limit_in_bytes").exists():
            (folder / "memory.memsw.limit_in_bytes").write_text(str(400 * 2**20))
    except OSError as exc:
        if folder.exists():
            folder.rmdir()
        pytest.skip(f"no memory cgroup to limit a process with here ({exc})")
    yield folder
    folder.rmdir()


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item):
    """A window test that failed halfway can leave a question open at its teardown ("Save changes?", "Training is
    running: stop and close?"); nobody answers it offscreen, so the whole run would wait forever. While the
    windows close (pytest-qt closes them inside this wrapper), any such question is answered with Cancel, which
    leaves that window open and the test's failure stands."""
    import sys

    app = None
    if "PySide6.QtWidgets" in sys.modules:
        from PySide6.QtWidgets import QApplication

        app = QApplication.instance()
    if app is None:
        return (yield)
    from PySide6.QtCore import QTimer

    def answer_open_question():
        modal = QApplication.activeModalWidget()
        if modal is not None:
            modal.reject()

    watchdog = QTimer(app)
    watchdog.setInterval(200)
    watchdog.timeout.connect(answer_open_question)
    watchdog.start()
    try:
        return (yield)
    finally:
        watchdog.stop()
        watchdog.deleteLater()
