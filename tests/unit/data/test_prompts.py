import pytest

from helpers.data.prompts import THEMES, load_prompts


def write(tmp_path, text):
    path = tmp_path / "prompts.csv"
    path.write_text(text)
    return path


def test_committed_prompts_are_100_in_5_themes():
    df = load_prompts()
    assert len(df) == 100
    assert df["theme"].value_counts().to_dict() == {t: 20 for t in THEMES}
    words = df["prompt"].str.split().str.len()
    assert words.between(12, 35).all()
    assert df["prompt"].is_unique


def test_per_theme_keeps_first_n():
    df = load_prompts(per_theme=3)
    assert len(df) == 15 and df["theme"].value_counts().eq(3).all()


def test_missing_column(tmp_path):
    with pytest.raises(ValueError, match="lacks column\\(s\\) theme"):
        load_prompts(write(tmp_path, "id,prompt\n1,hello\n"))


def test_empty_row(tmp_path):
    with pytest.raises(ValueError, match=r"empty theme or prompt in row\(s\) \[3\]"):
        load_prompts(write(tmp_path, 'id,theme,prompt\n1,A,"hi there"\n2,B,\n'))


def test_duplicate_ids(tmp_path):
    with pytest.raises(ValueError, match=r"repeats id\(s\) \[1\]"):
        load_prompts(write(tmp_path, "id,theme,prompt\n1,A,x y\n1,B,z w\n"))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="git checkout"):
        load_prompts(tmp_path / "nope.csv")


def test_unknown_theme_is_named(tmp_path):
    from helpers.data.prompts import load_prompts

    path = tmp_path / "p.csv"
    path.write_text("id,theme,prompt\n0,Fitness & Health,run far\n1,Sports,kick a ball\n")
    with pytest.raises(ValueError, match=r"1 unknown theme\(s\) \['Sports'\]"):
        load_prompts(path)


def test_an_overlong_prompt_is_refused_in_one_line(tmp_path):
    from helpers.data.prompts import load_prompts

    p = tmp_path / "prompts.csv"
    long = " ".join(["word"] * 5000)
    p.write_text(f'id,theme,prompt\n1,Fitness & Health,"short one"\n2,Fitness & Health,"{long}"\n')
    with pytest.raises(ValueError, match="row 3 has a prompt of 5,000 words") as err:
        load_prompts(p)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "prompts.csv is empty"),  # was pandas' EmptyDataError
        (b"id,theme,prompt\n", "prompts.csv has a header but no prompts"),  # was "no texts to capture" later
        (
            "id,theme,prompt\n0,Fitness & Health,caf\u00e9 au lait\n".encode("latin-1"),
            r"prompts.csv is not UTF-8 text \(byte 0xe9 in line 2\); re-save it as UTF-8",
        ),  # was a raw UnicodeDecodeError
        (b"id,theme,prompt\n0,Fitness & Health,a\x00b\n", "prompts.csv is binary"),
        (
            b"id,theme,prompt\n0,Fitness & Health,run far\n777.5,Fitness & Health,run more\n",
            r"prompts.csv row 3: id = 777.5 must be a whole number",
        ),  # was silently 777
        (
            b"id,theme,prompt\n0,Fitness & Health,run far\nthree,Fitness & Health,run more\n",
            r"prompts.csv row 3: id = 'three' must be a whole number",
        ),
        (
            b"id,theme,prompt\n0,Fitness & Health,run far\n1,Fitness & Health,a,b\n",
            r"prompts.csv is not valid CSV \(.*Expected 3 fields in line 3, saw 4",
        ),
    ],
)
def test_a_broken_prompts_file_is_one_line_naming_it(tmp_path, content, why):
    path = tmp_path / "prompts.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=why) as err:
        load_prompts(path)
    assert "\n" not in str(err.value)


def test_whole_ids_written_as_floats_and_a_bom_are_fine(tmp_path):
    path = tmp_path / "prompts.csv"
    path.write_bytes("\ufeffid,theme,prompt\n7.0,Fitness & Health,run far\n".encode())
    df = load_prompts(path)
    assert df["id"].tolist() == [7] and df["id"].dtype == "int64"
