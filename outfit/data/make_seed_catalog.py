#!/usr/bin/env python3
"""Writes outfit/data/seed_catalog.csv: the seed product catalogue of the outfit recommender.

Standard library only and deterministic (random.Random with a fixed seed): running it again gives the
same file byte for byte, so the committed CSV can be checked against it (tests/outfit: SeedCatalog).

Output columns (outfit/catalog.h documents the format):
    sku, name, category, slot, colour, hex, colours, styles, seasons, price, popularity
List fields use ';'. Colour names are the vocabulary of outfit/colour.cpp (name_colour), and each hex
in PALETTE is chosen so that name_colour(hex) gives back its name (a test checks every row).

Usage: python3 outfit/data/make_seed_catalog.py [-o outfit/data/seed_catalog.csv] [--check]
"""
import argparse
import csv
import io
import os
import random
import sys

SEED = 20240607

# Colour name -> representative hex (named back to the same name by outfit/colour.cpp).
PALETTE = {
    "black": "#111111",
    "charcoal": "#36454F",
    "grey": "#808080",
    "silver": "#C0C0C0",
    "white": "#F8F8F8",
    "cream": "#F3EBD3",
    "beige": "#D8C3A5",
    "brown": "#6F4E37",
    "olive": "#556B2F",
    "burgundy": "#800020",
    "red": "#C8102E",
    "pink": "#F4A7B9",
    "orange": "#F28C28",
    "yellow": "#F2D04B",
    "green": "#2E7D32",
    "teal": "#008080",
    "light blue": "#A7C7E7",
    "blue": "#2F5DA8",
    "navy": "#1F2A44",
    "purple": "#6A3D9A",
}

# category: (slot, sku prefix, count, [name variants], [colours], [styles], [season sets], (price lo, hi))
# The noun of the item name is the last word of a variant.
CATEGORIES = [
    ("tshirt", "top", "TEE", 14, ["Crew-Neck T-Shirt", "V-Neck T-Shirt", "Graphic T-Shirt", "Organic Cotton T-Shirt", "Oversized T-Shirt"],
     ["white", "black", "grey", "navy", "red", "green", "yellow", "light blue", "pink", "olive"],
     ["casual", "street", "sport"], [["spring", "summer"], ["all"], ["summer"]], (9, 35)),
    ("shirt", "top", "SHT", 14, ["Oxford Shirt", "Poplin Shirt", "Linen Shirt", "Flannel Shirt", "Slim Dress Shirt"],
     ["white", "light blue", "blue", "pink", "navy", "grey", "cream", "olive", "burgundy"],
     ["business", "casual", "formal"], [["all"], ["spring", "summer"], ["autumn", "winter"]], (25, 90)),
    ("blouse", "top", "BLS", 10, ["Silk Blouse", "Ruffled Blouse", "Wrap Blouse", "Pussy-Bow Blouse"],
     ["white", "cream", "pink", "navy", "black", "burgundy", "light blue", "teal"],
     ["business", "formal", "casual"], [["all"], ["spring", "summer"]], (29, 110)),
    ("sweater", "top", "SWT", 12, ["Merino Sweater", "Cable-Knit Sweater", "Cashmere Sweater", "Roll-Neck Sweater"],
     ["grey", "navy", "cream", "burgundy", "olive", "charcoal", "beige", "green", "black"],
     ["casual", "business"], [["autumn", "winter"], ["winter"]], (39, 160)),
    ("hoodie", "top", "HOO", 10, ["Zip Hoodie", "Pullover Hoodie", "Fleece Hoodie"],
     ["grey", "black", "navy", "olive", "burgundy", "white", "orange"],
     ["casual", "street", "sport"], [["autumn", "winter"], ["all"], ["spring", "autumn"]], (29, 85)),
    ("polo", "top", "POL", 8, ["Pique Polo", "Knitted Polo", "Performance Polo"],
     ["white", "navy", "black", "green", "light blue", "red"],
     ["casual", "sport", "business"], [["spring", "summer"], ["summer"]], (19, 70)),
    ("blazer", "outerwear", "BLZ", 12, ["Wool Blazer", "Linen Blazer", "Double-Breasted Blazer", "Unstructured Blazer"],
     ["navy", "charcoal", "black", "beige", "grey", "brown", "burgundy"],
     ["business", "formal"], [["all"], ["spring", "summer"], ["autumn", "winter"]], (89, 320)),
    ("coat", "outerwear", "COA", 12, ["Wool Overcoat", "Trench Coat", "Pea Coat", "Puffer Coat", "Camel Coat"],
     ["beige", "black", "navy", "charcoal", "brown", "grey", "olive", "burgundy"],
     ["business", "formal", "casual"], [["autumn", "winter"], ["winter"], ["spring", "autumn"]], (120, 450)),
    ("jacket", "outerwear", "JKT", 12, ["Denim Jacket", "Bomber Jacket", "Leather Jacket", "Field Jacket", "Windbreaker Jacket"],
     ["blue", "black", "olive", "brown", "navy", "beige", "red", "teal"],
     ["casual", "street", "sport"], [["spring", "autumn"], ["all"], ["autumn", "winter"]], (59, 280)),
    ("jeans", "bottom", "JNS", 14, ["Slim Jeans", "Straight Jeans", "Relaxed Jeans", "Tapered Jeans", "Wide-Leg Jeans"],
     ["blue", "light blue", "navy", "black", "grey", "white"],
     ["casual", "street"], [["all"]], (39, 130)),
    ("chinos", "bottom", "CHN", 12, ["Slim Chinos", "Straight Chinos", "Stretch Chinos", "Pleated Chinos"],
     ["beige", "navy", "olive", "cream", "grey", "brown", "black", "burgundy"],
     ["casual", "business"], [["all"], ["spring", "summer"]], (35, 110)),
    ("trousers", "bottom", "TRS", 12, ["Tailored Trousers", "Wool Trousers", "Pleated Trousers", "Wide-Leg Trousers"],
     ["charcoal", "navy", "black", "grey", "beige", "brown"],
     ["business", "formal"], [["all"], ["autumn", "winter"]], (49, 180)),
    ("shorts", "bottom", "SHO", 10, ["Chino Shorts", "Denim Shorts", "Running Shorts", "Linen Shorts"],
     ["beige", "navy", "blue", "olive", "white", "black", "light blue", "red"],
     ["casual", "sport", "street"], [["summer"], ["spring", "summer"]], (19, 60)),
    ("joggers", "bottom", "JOG", 8, ["Fleece Joggers", "Tech Joggers", "Cargo Joggers"],
     ["black", "grey", "navy", "olive", "charcoal"],
     ["sport", "street", "casual"], [["all"], ["autumn", "winter"]], (29, 90)),
    ("skirt", "bottom", "SKT", 12, ["Pleated Skirt", "Pencil Skirt", "A-Line Skirt", "Denim Skirt", "Midi Skirt"],
     ["black", "navy", "beige", "burgundy", "blue", "green", "pink", "grey", "cream"],
     ["casual", "business", "formal"], [["all"], ["spring", "summer"]], (29, 120)),
    ("dress", "one_piece", "DRS", 14, ["Wrap Dress", "Shirt Dress", "Slip Dress", "Midi Dress", "Cocktail Dress", "Sundress"],
     ["black", "navy", "red", "green", "pink", "white", "burgundy", "yellow", "light blue", "purple", "teal"],
     ["casual", "formal", "business"], [["spring", "summer"], ["all"], ["summer"], ["autumn", "winter"]], (39, 260)),
    ("jumpsuit", "one_piece", "JMP", 6, ["Utility Jumpsuit", "Wide-Leg Jumpsuit", "Linen Jumpsuit"],
     ["black", "olive", "navy", "beige", "teal"],
     ["casual", "street", "formal"], [["spring", "summer"], ["all"]], (59, 180)),
    ("sneakers", "shoes", "SNK", 14, ["Leather Sneakers", "Canvas Sneakers", "Running Sneakers", "High-Top Sneakers", "Retro Sneakers"],
     ["white", "black", "grey", "navy", "red", "cream", "green", "blue"],
     ["casual", "street", "sport"], [["all"], ["spring", "summer"]], (49, 180)),
    ("boots", "shoes", "BTS", 12, ["Chelsea Boots", "Chukka Boots", "Lace-Up Boots", "Hiking Boots", "Ankle Boots"],
     ["brown", "black", "beige", "burgundy", "charcoal"],
     ["casual", "street", "formal"], [["autumn", "winter"], ["winter"], ["all"]], (79, 290)),
    ("loafers", "shoes", "LOF", 10, ["Penny Loafers", "Suede Loafers", "Tassel Loafers", "Horsebit Loafers"],
     ["brown", "black", "burgundy", "beige", "navy"],
     ["business", "formal", "casual"], [["all"], ["spring", "summer"]], (69, 240)),
    ("oxfords", "shoes", "OXF", 8, ["Cap-Toe Oxfords", "Brogue Oxfords", "Plain Oxfords"],
     ["black", "brown", "burgundy"],
     ["formal", "business"], [["all"]], (89, 300)),
    ("heels", "shoes", "HEL", 12, ["Stiletto Heels", "Block Heels", "Kitten Heels", "Slingback Heels"],
     ["black", "red", "beige", "silver", "pink", "navy", "burgundy", "white"],
     ["formal", "business"], [["all"], ["spring", "summer"]], (59, 260)),
    ("sandals", "shoes", "SND", 10, ["Leather Sandals", "Strappy Sandals", "Slide Sandals", "Sport Sandals"],
     ["brown", "black", "beige", "white", "silver", "cream"],
     ["casual", "sport", "formal"], [["summer"], ["spring", "summer"]], (25, 140)),
    ("flats", "shoes", "FLT", 6, ["Ballet Flats", "Pointed Flats", "Mary-Jane Flats"],
     ["black", "beige", "red", "navy", "silver"],
     ["casual", "business"], [["all"], ["spring", "summer"]], (35, 120)),
    ("hat", "accessory", "HAT", 10, ["Baseball Cap", "Wool Beanie", "Bucket Hat", "Fedora Hat", "Straw Hat"],
     ["black", "navy", "beige", "grey", "olive", "cream", "brown", "red"],
     ["casual", "street", "sport", "formal"], [["all"], ["autumn", "winter"], ["spring", "summer"]], (15, 90)),
    ("scarf", "accessory", "SCF", 10, ["Wool Scarf", "Cashmere Scarf", "Silk Scarf", "Chunky Knit Scarf"],
     ["burgundy", "grey", "navy", "beige", "red", "cream", "green", "charcoal"],
     ["casual", "business", "formal"], [["autumn", "winter"], ["winter"], ["spring", "autumn"]], (19, 140)),
    ("sunglasses", "accessory", "SUN", 8, ["Aviator Sunglasses", "Wayfarer Sunglasses", "Round Sunglasses", "Sport Sunglasses"],
     ["black", "brown", "silver", "navy"],
     ["casual", "street", "sport"], [["spring", "summer"], ["summer"]], (25, 220)),
    ("bag", "accessory", "BAG", 12, ["Leather Tote Bag", "Canvas Backpack Bag", "Crossbody Bag", "Briefcase Bag", "Gym Duffel Bag"],
     ["black", "brown", "beige", "navy", "olive", "burgundy", "grey"],
     ["casual", "business", "street", "sport"], [["all"]], (39, 320)),
    ("clutch", "accessory", "CLU", 6, ["Evening Clutch", "Satin Clutch", "Metallic Clutch"],
     ["black", "silver", "red", "beige", "pink"],
     ["formal"], [["all"]], (35, 180)),
    ("belt", "accessory", "BLT", 8, ["Leather Belt", "Braided Belt", "Reversible Belt", "Canvas Belt"],
     ["brown", "black", "beige", "navy"],
     ["business", "casual", "formal"], [["all"]], (19, 90)),
    ("socks", "accessory", "SOK", 8, ["Cotton Socks", "Merino Socks", "Sport Socks", "Patterned Socks"],
     ["white", "black", "grey", "navy", "burgundy", "green"],
     ["casual", "sport", "business"], [["all"], ["autumn", "winter"]], (5, 25)),
    ("gloves", "accessory", "GLV", 6, ["Leather Gloves", "Knit Gloves", "Touchscreen Gloves"],
     ["black", "brown", "grey", "navy"],
     ["casual", "business", "formal"], [["winter"], ["autumn", "winter"]], (15, 90)),
    ("tie", "accessory", "TIE", 8, ["Silk Tie", "Knit Tie", "Skinny Tie", "Wool Tie"],
     ["navy", "burgundy", "black", "grey", "blue", "green", "purple"],
     ["formal", "business"], [["all"]], (19, 80)),
]

HEADER = ["sku", "name", "category", "slot", "colour", "hex", "colours", "styles", "seasons", "price", "popularity"]


def title(colour):
    return " ".join(w.capitalize() for w in colour.split())


def generate():
    rng = random.Random(SEED)
    rows = []
    for category, slot, prefix, count, variants, colours, styles, season_sets, (lo, hi) in CATEGORIES:
        seen = set()
        n = 0
        attempts = 0
        while n < count:
            attempts += 1
            if attempts > 1000:
                raise SystemExit(f"cannot make {count} distinct {category} items")
            variant = rng.choice(variants)
            colour = rng.choice(colours)
            if (variant, colour) in seen:
                continue
            seen.add((variant, colour))
            n += 1
            # a second colour on about a third of the items (a neutral trim)
            extra = []
            if rng.random() < 0.33:
                second = rng.choice(["white", "black", "grey", "navy", "beige", "brown"])
                if second != colour:
                    extra.append(second)
            k = 1 if len(styles) == 1 else rng.choice([1, 2, 2])
            item_styles = sorted(rng.sample(styles, k), key=styles.index)
            seasons = rng.choice(season_sets)
            price = round(rng.uniform(lo, hi)) - 0.01
            # popularity 0..100: a few hits, most items mid-range
            popularity = round(min(100.0, max(1.0, rng.betavariate(2.0, 2.5) * 100.0)), 1)
            rows.append({
                "sku": f"{prefix}-{n:03d}",
                "name": f"{title(colour)} {variant}",
                "category": category,
                "slot": slot,
                "colour": colour,
                "hex": PALETTE[colour],
                "colours": ";".join([colour] + extra),
                "styles": ";".join(item_styles),
                "seasons": ";".join(seasons),
                "price": f"{price:.2f}",
                "popularity": f"{popularity:.1f}",
            })
    return rows


def render(rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HEADER, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", default=os.path.join(here, "seed_catalog.csv"))
    ap.add_argument("--check", action="store_true", help="exit 1 if the file differs from what would be written")
    args = ap.parse_args()
    text = render(generate())
    if args.check:
        try:
            with open(args.out, encoding="utf-8", newline="") as f:
                same = f.read() == text
        except FileNotFoundError:
            same = False
        print(f"{args.out}: {'up to date' if same else 'STALE (re-run make_seed_catalog.py)'}")
        return 0 if same else 1
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    print(f"wrote {args.out}: {text.count(chr(10)) - 1} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
