"""Stage 5: ask the fine-tuned model and the base model the same question, side by side, both streamed.

The fine-tuned side prefers an exported GGUF of the current run (what users will actually run), found where
the export wrote it, else the trained adapter on the 16-bit base through transformers (studio.chat decides).
Models load once, on a background Task, and stay loaded until the run or the base model changes. The held-out
list holds rows the run never trained on, each with the dataset's own answer to compare against."""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton,
                               QSplitter, QVBoxLayout, QWidget)

from studio.chat import load_chat, tuned_source
from studio.errors import StudioError
from studio.glossary import TERMS
from ui.context import touches
from ui.pages import Page
from ui.tasks import Task
from ui.theme import role_label
from ui.widgets.chat_pane import ChatPane

MAX_TOKENS = 200
HELD_OUT_SHOWN = 30


class TestPage(Page):
    title = "Test"
    icon = "test.svg"
    __test__ = False  # its name starts with "Test", but it is not a pytest test class

    def __init__(self, studio):
        super().__init__(studio)
        self.chats: dict[tuple, object] = {}  # (kind, what) -> loaded chat object, kept between questions
        self._chats_lock = threading.Lock()
        self.tasks: dict[str, Task] = {}  # side -> the Task answering now
        self.examples = []
        self._examples_task = None
        self._examples_for = None  # the run whose held-out examples are listed

        heading = role_label("heading", "Test")
        self.hint = role_label("hint", "")
        self.hint.setWordWrap(True)
        self.template_default = ""  # the instruction the base model's template adds when none is set
        self._template_for = None  # the base model it was read for
        self._template_task = None

        # The project's system prompt, here where its effect is seen (the same setting training used).
        self.system_prompt = QLineEdit()
        self.system_prompt.setPlaceholderText("none")
        self.system_prompt.editingFinished.connect(self._system_prompt_edited)
        self.system_label = QLabel("")
        self.system_explained = role_label("hint", "")
        self.system_explained.setWordWrap(True)
        system_row = QHBoxLayout()
        system_row.addWidget(self.system_label)
        system_row.addWidget(self.system_prompt, 1)

        self.held_out = QListWidget()
        self.held_out.setWordWrap(True)
        self.held_out.setToolTip("Rows of your data the run never trained on (the eval split). Click one to ask "
                                 "both models and see the answer your data gives.")
        self.held_out.itemClicked.connect(self._example_clicked)
        self.reference = QLabel("")
        self.reference.setWordWrap(True)
        self.reference.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        self.held_out_label = QLabel("")
        left_layout.addWidget(self.held_out_label)
        left_layout.addWidget(self.held_out, 1)
        left_layout.addWidget(self.reference)

        self.tuned = ChatPane("Fine-tuned model")
        self.base = ChatPane("Base model")
        self.panes = {"tuned": self.tuned, "base": self.base}
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.tuned)
        splitter.addWidget(self.base)
        splitter.setSizes([260, 400, 400])

        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText("Ask both models something… (Enter)")
        self.prompt.returnPressed.connect(self.ask_prompt)
        self.ask_button = QPushButton("Ask both")
        self.ask_button.clicked.connect(self.ask_prompt)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop generating (Esc)")
        self.stop_button.clicked.connect(self.stop)
        QShortcut(QKeySequence("Escape"), self, activated=self.stop)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Clear both conversations")
        self.clear_button.clicked.connect(self.clear)
        ask_row = QHBoxLayout()
        ask_row.addWidget(self.prompt, 1)
        for button in (self.ask_button, self.stop_button, self.clear_button):
            ask_row.addWidget(button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(8)
        layout.addWidget(heading)
        layout.addWidget(self.hint)
        layout.addLayout(system_row)
        layout.addWidget(self.system_explained)
        layout.addWidget(splitter, 1)
        layout.addLayout(ask_row)
        studio.run_changed.connect(self._run_changed)
        studio.busy_changed.connect(lambda busy: self._update_buttons())
        self._update_buttons()

    # --- page protocol --------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        source = tuned_source(self.studio.run_dir, self.project) if not self.studio.busy else None
        if source is None:
            return False, "train a run first"
        return True, "GGUF ready to chat" if source[0] == "gguf" else "adapter ready to chat"

    def load_project(self) -> None:
        self.system_prompt.setText(self.project.data.system_prompt)
        self._run_changed(self.studio.run_dir)

    def view_changed(self, expert: bool) -> None:
        self._describe_sources()

    def _system_prompt_edited(self) -> None:
        text = self.system_prompt.text().strip()
        if text == self.project.data.system_prompt:
            return
        try:
            self.studio.apply({"data.system_prompt": text})
        except StudioError as error:
            self.system_explained.setText(str(error))

    def project_changed(self, keys) -> None:
        if touches(keys, "data.system_prompt") and self.system_prompt.text().strip() != self.project.data.system_prompt:
            self.system_prompt.setText(self.project.data.system_prompt)
        if touches(keys, "model.", "export.output_dir", "data.system_prompt"):  # what is asked, and where
            self._release_unused_models()
            self._describe_sources()

    # --- run and models -------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if self._examples_for != self.studio.run_dir:
            self._load_examples()
        self._read_template_default()

    def _read_template_default(self) -> None:
        """What the base model's template adds when no instruction is set, read once per model on a Task."""
        base = self.project.model.name
        if base == self._template_for or self.studio.busy:
            return
        self._template_for = base

        def work(progress, cancelled):
            from studio.chat import template_default_instruction
            return template_default_instruction(base)

        def done(text):
            if base == self.project.model.name:
                self.template_default = text
                self._describe_sources()

        self._template_task = Task(work, self, needs_ml=True, on_success=done,
                                   on_failure=lambda message: None).start()  # only an explanation is missing

    def _run_changed(self, run_dir) -> None:
        self._release_unused_models()
        self._describe_sources()
        self.held_out.clear()
        self.reference.setText("")
        self.examples = []
        self._examples_for = None
        # Only while the page is shown: reading the data imports libraries on a thread, which would hold
        # Python's lock and stall the window during training.
        if self.isVisible():
            self._load_examples()

    def _load_examples(self) -> None:
        run_dir = self.studio.run_dir
        if run_dir is None or self.studio.busy:
            return
        self._examples_for = run_dir

        def work(progress, cancelled):
            from studio.heldout import held_out_examples
            return held_out_examples(run_dir, HELD_OUT_SHOWN)

        self._examples_task = Task(work, self, needs_ml=True, on_success=self._show_examples,
                                   on_failure=self.reference.setText).start()

    def _show_examples(self, examples) -> None:
        self.held_out.clear()
        self.examples = examples
        for example in examples:
            item = QListWidgetItem(example.question)
            item.setToolTip(example.where)
            self.held_out.addItem(item)
        if not examples:
            self.held_out.addItem("(this run holds no examples out: set an eval fraction on the Data page)")

    def _describe_sources(self) -> None:
        expert = self.studio.expert
        source = tuned_source(self.studio.run_dir, self.project)
        if source is None:
            self.tuned.source.setText("No trained run yet: train one on the Train page.")
        elif source[0] == "gguf":
            self.tuned.source.setText(f"Exported GGUF in llama.cpp: {Path(source[1]).name}" if expert else
                                      f"Your exported file ({Path(source[1]).name}), as chat apps will run it")
        else:
            self.tuned.source.setText(f"Trained weights of run {Path(source[1]).parent.name} via transformers "
                                      "(export to chat with the GGUF)" if expert else
                                      f"Your trained model (run {Path(source[1]).parent.name}, not exported yet)")
        self.base.source.setText(f"{self.project.model.name} via transformers" if expert else
                                 f"The model before training ({self.project.model.name})")
        system = self.project.data.system_prompt
        self.system_label.setText("System prompt:" if expert else "Instruction for every question:")
        self.held_out_label.setText("Held-out examples" if expert else "Your examples kept out of training")
        if system:
            said = "Both models get the same question, after this instruction (training used it too)."
        elif self.template_default:
            said = (f"No instruction set. This model's template adds a default instruction: "
                    f"“{self.template_default}”.")
        else:
            said = "No instruction set: the models get only your question."
        self.system_explained.setText(said if expert else f"{said}\nSystem prompt: {TERMS['system prompt']}")
        self.hint.setText("Both models get the same question. Answers are greedy (temperature 0), so a difference "
                          "comes from the training." if expert else
                          "Ask both models the same question: the one you trained and the one you started from. "
                          "Each always picks its most likely next word, so the same question gets the same answer "
                          "and a difference comes from the training.")

    def _sources(self) -> dict[str, tuple]:
        sources = {"base": ("hf", self.project.model.name)}
        tuned = tuned_source(self.studio.run_dir, self.project)
        if tuned:
            sources["tuned"] = tuned
        return sources

    def _chat(self, key: tuple, base_name: str):
        """The loaded model for `key`, loading it on first use (called on a Task's thread)."""
        with self._chats_lock:
            if key not in self.chats:
                kind, what = key
                if kind == "hf" and what == base_name:
                    from studio.models import resolve_model
                    what = str(resolve_model(base_name))
                self.chats[key] = load_chat(kind, what, base_name)
            return self.chats[key]

    def _release_unused_models(self) -> None:
        """Free the memory of models the current run and base no longer use (not while one is answering)."""
        if self.generating:
            return
        wanted = set(self._sources().values())
        with self._chats_lock:
            for key in [k for k in self.chats if k not in wanted]:
                chat = self.chats.pop(key)
                if hasattr(chat, "close"):
                    chat.close()

    # --- asking ---------------------------------------------------------------------------------------
    def ask_prompt(self) -> None:
        question = self.prompt.text().strip()
        if not question or self.generating:
            return
        self.prompt.clear()
        messages = []
        if self.project.data.system_prompt:
            messages.append({"role": "system", "content": self.project.data.system_prompt})
        messages.append({"role": "user", "content": question})
        self.reference.setText("")
        self.ask(messages, question)

    def _example_clicked(self, item) -> None:
        row = self.held_out.row(item)
        if row >= len(self.examples) or self.generating:
            return
        example = self.examples[row]
        self.reference.setText(f"Answer in your data ({example.where}):\n{example.reference}")
        self.ask(example.messages, example.question)

    def ask(self, messages: list[dict], question: str) -> None:
        """Both models answer `messages`, each streaming into its pane from its own Task."""
        base_name = self.project.model.name
        for side, key in self._sources().items():
            pane = self.panes[side]
            pane.ask(question)
            self.tasks[side] = Task(self._answer_work(key, base_name, messages), self, needs_ml=True, stream=True,
                                    on_progress=lambda status, fraction, p=pane: p.note(status), on_item=pane.add,
                                    on_failure=pane.note, on_cancel=lambda why, p=pane: p.note("stopped"),
                                    on_finish=lambda s=side: self._answer_done(s)).start()
        if "tuned" not in self.tasks:
            self.tuned.ask(question)
            self.tuned.note("no trained run yet")
        self._update_buttons()

    def _answer_work(self, key, base_name, messages):
        """On the Task's thread: load the model if needed (saying so), then the answer, piece by piece."""
        def work(progress, cancelled):
            if key not in self.chats:
                progress("loading the model…", 0.0)
            return self._chat(key, base_name).stream(messages, max_tokens=MAX_TOKENS)
        return work

    def _answer_done(self, side: str) -> None:
        self.tasks.pop(side, None)
        self._update_buttons()

    @property
    def generating(self) -> bool:
        return bool(self.tasks)

    def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()

    def clear(self) -> None:
        self.stop()
        for pane in self.panes.values():
            pane.clear()
        self.reference.setText("")

    def _update_buttons(self) -> None:
        idle = not self.generating
        self.ask_button.setEnabled(idle)
        self.held_out.setEnabled(idle)
        self.stop_button.setEnabled(not idle)
        self._describe_sources()

    def shutdown(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
            task.wait(10_000)
        for task in (self._examples_task, self._template_task):
            if task is not None:
                task.wait(5_000)
        with self._chats_lock:  # llama.cpp frees its model now, not during interpreter exit
            for chat in self.chats.values():
                if hasattr(chat, "close"):
                    chat.close()
            self.chats.clear()
