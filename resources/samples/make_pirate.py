"""Writes pirate_chat.jsonl: a small chat dataset where every answer is given in a pirate's voice.

Why this task: a 135M model learns a consistent voice in a few minutes of CPU training, so the change is
plain to see on held-out questions (the base model answers plainly; the fine-tuned one says "Arr"). The
facts are short and true, so the model is not taught nonsense. Run: python make_pirate.py
"""
import json
import random
from pathlib import Path

CAPITALS = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Germany", "Berlin"),
            ("Portugal", "Lisbon"), ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Canada", "Ottawa"),
            ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Norway", "Oslo"), ("Greece", "Athens"),
            ("Ireland", "Dublin"), ("Poland", "Warsaw"), ("Austria", "Vienna"), ("Cuba", "Havana"),
            ("Chile", "Santiago"), ("Sweden", "Stockholm"), ("Russia", "Moscow"), ("India", "New Delhi")]
ANIMAL_SOUNDS = [("cow", "moo"), ("dog", "woof"), ("cat", "meow"), ("duck", "quack"), ("sheep", "baa"),
                 ("lion", "roar"), ("owl", "hoot"), ("horse", "neigh"), ("pig", "oink"), ("frog", "croak")]
COLOURS = [("the sky on a clear day", "blue"), ("fresh grass", "green"), ("a ripe banana", "yellow"),
           ("snow", "white"), ("coal", "black"), ("a ripe tomato", "red"), ("an orange", "orange"),
           ("a lemon", "yellow"), ("the sea", "blue"), ("a lump of charcoal", "black")]
FACTS = [("How many days are in a week?", "there be seven days in a week"),
         ("How many legs does a spider have?", "a spider has eight legs"),
         ("What do bees make?", "bees make honey"),
         ("What is frozen water called?", "frozen water be called ice"),
         ("Which planet do we live on?", "we live on the Earth"),
         ("What gives us light during the day?", "the Sun gives us light by day"),
         ("How many hours are in a day?", "there be twenty-four hours in a day"),
         ("What do you use to write on paper?", "ye use a pen or a pencil"),
         ("What falls from clouds when it rains?", "water falls from the clouds"),
         ("How many months are in a year?", "there be twelve months in a year"),
         ("What do fish live in?", "fish live in water"),
         ("What is the opposite of hot?", "the opposite of hot be cold"),
         ("What is the opposite of up?", "the opposite of up be down"),
         ("How many wheels does a bicycle have?", "a bicycle has two wheels"),
         ("What do plants need to grow?", "plants need sunlight, water and good soil"),
         ("What shape is a ball?", "a ball be round"),
         ("Where do penguins live?", "penguins live in the cold south, near Antarctica"),
         ("What is the biggest ocean?", "the Pacific be the biggest ocean of them all"),
         ("What do cows drink?", "cows drink water"),
         ("What season comes after winter?", "spring comes after winter")]
OPENINGS = ["Arr, matey!", "Arr!", "Ahoy, matey!", "Arr, me hearty!", "Shiver me timbers!"]
CLOSINGS = ["Yo ho ho!", "Now swab the deck!", "That be the truth, by me parrot!", "Arr!"]


def pirate(answer: str, rng: random.Random) -> str:
    return f"{rng.choice(OPENINGS)} {answer[0].upper()}{answer[1:]}. {rng.choice(CLOSINGS)}"


def questions(rng: random.Random):
    for country, capital in CAPITALS:
        for q in (f"What is the capital of {country}?", f"Which city is the capital of {country}?"):
            yield q, f"the capital o' {country} be {capital}"
    for animal, sound in ANIMAL_SOUNDS:
        for q in (f"What sound does a {animal} make?", f"What does a {animal} say?"):
            yield q, f"a {animal} says '{sound}'"
    for thing, colour in COLOURS:
        for q in (f"What colour is {thing}?", f"Tell me the colour of {thing}."):
            yield q, f"{thing} be {colour}"
    for q, a in FACTS:
        yield q, a
        yield q.replace("?", ", please?"), a


def main() -> None:
    rng = random.Random(7)
    rows = []
    for question, answer in questions(rng):
        rows.append({"messages": [{"role": "user", "content": question},
                                  {"role": "assistant", "content": pirate(answer, rng)}]})
    rng.shuffle(rows)
    out = Path(__file__).with_name("pirate_chat.jsonl")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {out}")


# The demo's held-out questions (studio/demo.py HELD_OUT) appear nowhere in this file.

if __name__ == "__main__":
    main()
